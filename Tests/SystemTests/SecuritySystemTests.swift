import Foundation
import SlipwayCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The review round's attacks on the real daemon (SECURITY.md names each test).
@Suite(.serialized, .enabled(if: TestEnvironment.shouldRun, TestEnvironment.skipMessage))
struct SecuritySystemTests {
    static let openssl = "/usr/bin/openssl"

    /// A self-signed certificate for 127.0.0.1 made by openssl.
    static func certificate(_ dir: String, _ name: String) throws -> (cert: String, key: String) {
        let cert = "\(dir)/\(name).pem", key = "\(dir)/\(name)-key.pem"
        let r = try run(
            openssl,
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=\(name)",
                "-addext", "subjectAltName=IP:127.0.0.1",
            ])
        guard r.status == 0 else { throw RawHTTPClient.Failure(description: "openssl: \(r.err)") }
        chmod(key, 0o600)
        return (cert, key)
    }

    static func curl(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        try run("/usr/bin/curl", ["-s", "--max-time", "5"] + args)
    }

    @Test func tlsServesHTTPSOnlyAndRotatesWithoutRestart() throws {
        let daemon = try DaemonProcess()
        let first = try Self.certificate(daemon.dir, "first")
        let second = try Self.certificate(daemon.dir, "second")
        let servedCert = daemon.dir + "/served.pem", servedKey = daemon.dir + "/served-key.pem"
        try FileManager.default.copyItem(atPath: first.cert, toPath: servedCert)
        try FileManager.default.copyItem(atPath: first.key, toPath: servedKey)
        try daemon.appendConfig("tls: { cert_file: \"served.pem\", key_file: \"served-key.pem\" }\n")
        try daemon.start(waitForHealth: false)
        let url = "https://127.0.0.1:\(daemon.port)/healthz"
        try daemon.waitUntil("HTTPS answering") { (try? Self.curl(["--cacert", first.cert, url]))?.out.contains("\"ok\"") == true }
        // Plain HTTP gets no answer from a TLS listener; TLS 1.1 is refused.
        #expect((try? RawHTTPClient(port: daemon.port, timeoutSeconds: 2).request("GET", "/healthz"))?.status != 200)
        #expect(try Self.curl(["--cacert", first.cert, "--tlsv1.1", "--tls-max", "1.1", url]).status != 0)
        // A signed delivery over HTTPS.
        let body = Data(#"{"ref":"refs/heads/main","zen":"tls"}"#.utf8)
        var args = ["--cacert", first.cert, "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", String(decoding: body, as: UTF8.self)]
        for (name, value) in DaemonProcess.headers(for: body, delivery: "tls-1") { args += ["-H", "\(name): \(value)"] }
        #expect(try Self.curl(args + ["https://127.0.0.1:\(daemon.port)/webhooks/github"]).out == "202")
        // Rotation: new files, SIGHUP, new connections get the new certificate.
        try FileManager.default.removeItem(atPath: servedCert)
        try FileManager.default.removeItem(atPath: servedKey)
        try FileManager.default.copyItem(atPath: second.cert, toPath: servedCert)
        try FileManager.default.copyItem(atPath: second.key, toPath: servedKey)
        daemon.signal(SIGHUP)
        try daemon.waitUntil("the new certificate served") { (try? Self.curl(["--cacert", second.cert, url]))?.out.contains("\"ok\"") == true }
        #expect(try Self.curl(["--cacert", first.cert, url]).status != 0, "the old certificate is no longer served")
        #expect(daemon.log.contains("TLS certificate reloaded"))
    }

    @Test func mismatchedCertificateAndKeyRefuseToStart() throws {
        let daemon = try DaemonProcess()
        let first = try Self.certificate(daemon.dir, "first")
        let second = try Self.certificate(daemon.dir, "second")
        try daemon.appendConfig("tls: { cert_file: \"\(first.cert)\", key_file: \"\(second.key)\" }\n")
        let r = try run("/usr/bin/timeout", ["20", DaemonProcess.binary, "serve", "--config", daemon.configPath])
        #expect(r.status != 0)
        #expect(r.err.contains("tls.key_file") && r.err.contains("does not belong to the certificate"), "\(r.err)")
        let missing = try DaemonProcess()
        try missing.appendConfig("tls: { cert_file: \"/nonexistent/cert.pem\", key_file: \"\(second.key)\" }\n")
        let r2 = try run("/usr/bin/timeout", ["20", DaemonProcess.binary, "serve", "--config", missing.configPath])
        #expect(r2.status != 0 && r2.err.contains("tls.cert_file /nonexistent/cert.pem"), "\(r2.err)")
    }

    @Test func aCapturedBodyUnderANewDeliveryIdIsADuplicate() throws {
        let daemon = try DaemonProcess()
        try daemon.start()
        let body = Data(#"{"ref":"refs/heads/main","after":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","nonce":"captured"}"#.utf8)
        let client = try RawHTTPClient(port: daemon.port)
        let first = try client.request("POST", "/webhooks/github", headers: DaemonProcess.headers(for: body, delivery: "orig"), body: body)
        #expect(first.status == 202)
        // Replayed by an attacker (or sent by an organisation hook too): fresh delivery and hook ids.
        let replay = try client.request(
            "POST", "/webhooks/github", headers: DaemonProcess.headers(for: body, delivery: "fresh-id", hook: "999"), body: body)
        #expect(replay.status == 200)
        #expect(replay.json["duplicate"] as? Bool == true && replay.json["event"] as? Int == first.json["event"] as? Int)
        #expect(try daemon.storedDeliveries().map(\.id) == ["orig"])
    }

    @Test func anExtraHeaderCannotTurnJSONIntoAForm() throws {
        let daemon = try DaemonProcess()
        try daemon.start()
        let fake = #"{"ref":"refs/heads/main","after":"ffffffffffffffffffffffffffffffffffffffff","repository":{"clone_url":"https://github.com/evil/repo.git","full_name":"evil/repo"}}"#
        let json =
            #"{"ref":"refs/heads/main","after":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","head_commit":{"message":"x&payload=\#(fake.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)"},"repository":{"clone_url":"https://github.com/octo-org/web.git","full_name":"octo-org/web"}}"#
        let body = Data(json.utf8)
        var headers = DaemonProcess.headers(for: body, delivery: "smuggle")
        headers.append(("X-Note", "application/x-www-form-urlencoded"))
        let r = try RawHTTPClient(port: daemon.port).request("POST", "/webhooks/github", headers: headers, body: body)
        #expect(r.status == 202)
        let show = try cli(daemon, ["event", "show", "\(r.json["event"] as? Int ?? 0)", "--output", "json"])
        #expect(show.out.contains("octo-org/web") && !show.out.contains("evil/repo"), "\(show.out)")
    }

    @Test func bodiesBeforeTheirSignatureAreCappedAcrossConnections() throws {
        let daemon = try DaemonProcess()
        try daemon.rewriteConfig("max_body_bytes: 1048576", "max_body_bytes: 26214400\n  max_inflight_bytes: 67108864")
        try daemon.start()
        let twenty = 20 * 1024 * 1024
        var holders: [RawHTTPClient] = []
        var refused = 0
        for n in 0..<64 {
            let c = try RawHTTPClient(port: daemon.port, timeoutSeconds: 5)
            var head = "POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(twenty)\r\n"
            head += "X-GitHub-Event: push\r\nX-GitHub-Delivery: big-\(n)\r\nX-Hub-Signature-256: sha256=\(String(repeating: "0", count: 64))\r\n\r\n"
            try c.send(Data(head.utf8) + Data(repeating: UInt8(ascii: " "), count: 64 * 1024))
            holders.append(c)
        }
        for c in holders {
            if let r = try? c.readResponse(), r.status == 503 {
                refused += 1
                #expect(r.headers["retry-after"] != nil)
            }
        }
        // 64 MiB hold three 20 MiB bodies: every other one is refused at once.
        #expect(refused >= 60, "refused \(refused) of 64")
        let small = Data(#"{"ref":"refs/heads/main","nonce":"small"}"#.utf8)
        let r = try RawHTTPClient(port: daemon.port).request(
            "POST", "/webhooks/github", headers: DaemonProcess.headers(for: small, delivery: "small"), body: small)
        #expect(r.status == 202, "a small signed delivery still gets through")
        holders.removeAll()
    }

    @Test func theOperatorIsTheSocketPeerNotAHeader() throws {
        let repo = try GitRepo(name: PipelineSystemTests.name("peer"))
        _ = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile(), "app/hello.txt": "x"])
        let daemon = try PipelineSystemTests.daemon(tasks: [PipelineSystemTests.task("web", repo: repo, image: repo.name)])
        let r = try run(
            "/usr/bin/curl",
            [
                "-s", "--unix-socket", daemon.dir + "/slipway.sock", "-X", "POST", "-H", "X-Slipway-User: mallory", "-d", "{}",
                "http://slipway/v1/tasks/web/runs",
            ])
        #expect(r.out.contains("sw1"), "\(r.out) \(r.err)")
        let show = try cli(daemon, ["run", "show", "sw1", "--output", "json"])
        let run = try AdminAPI.decoder.decode(AdminAPI.Run.self, from: Data(show.out.utf8))
        let me = String(cString: getpwuid(getuid())!.pointee.pw_name)
        #expect(run.requestedBy == me, "recorded \(String(describing: run.requestedBy)), the peer is \(me)")
        _ = try daemon.waitForRun("sw1")
    }

    @Test func aMultiLineSecretIsMaskedLineByLine() throws {
        let repo = try GitRepo(name: PipelineSystemTests.name("pem"))
        let sha = try repo.commit([
            "app/Dockerfile": PipelineSystemTests.dockerfile("ARG CERT\nRUN echo \"$CERT\"\n"), "app/hello.txt": "x",
        ])
        let secretFile = "/tmp/slipway-pem-\(UUID().uuidString.prefix(6))"
        let lines = ["-----BEGIN TEST KEY-----", "c2VjcmV0LWxpbmUtb25l\(UUID().uuidString.prefix(8))", "-----END TEST KEY-----"]
        FileManager.default.createFile(
            atPath: secretFile, contents: Data((lines.joined(separator: "\n") + "\n").utf8), attributes: [.posixPermissions: 0o600])
        defer { try? FileManager.default.removeItem(atPath: secretFile) }
        let task = PipelineSystemTests.task(
            "web", repo: repo, image: repo.name, extra: "    secret_build_args: { CERT: \"\(secretFile)\" }\n")
        let daemon = try PipelineSystemTests.daemon(tasks: [task])
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        let run = try daemon.waitForRun("sw1")
        let log = daemon.runLog("sw1")
        #expect(run.status == "Succeeded", "\(log)")
        for line in lines { #expect(!log.contains(line), "'\(line)' in the run log") }
        #expect(log.contains("***"))
    }

    @Test func noWebhookSecretRefusesANonLoopbackListener() throws {
        let dir = "/tmp/slipway-nosecret-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let port = try DaemonProcess.freePort()
        try "listen: \"0.0.0.0:\(port)\"\ndata_dir: \"data\"\nadmin_socket: \"s.sock\"\n".write(
            toFile: dir + "/slipway.yaml", atomically: true, encoding: .utf8)
        let r = try run("/usr/bin/timeout", ["20", DaemonProcess.binary, "serve", "--config", dir + "/slipway.yaml"])
        #expect(r.status != 0)
        #expect(r.err.contains("webhook.secret_files"), "\(r.err)")
    }
}
