import Foundation
import SlipwayCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// GitHub through a local stand-in (`scripts/fake-github.py`) that checks every request.
@Suite(.serialized, .enabled(if: TestEnvironment.shouldRun, TestEnvironment.skipMessage))
struct GitHubSystemTests {
    final class FakeGitHub {
        let server: Background
        let port: Int
        /// The test's scratch directory (the server's log; the daemon's token file).
        let dir: String
        var url: String { "http://127.0.0.1:\(port)" }

        init(arguments: [String], dir: String) throws {
            self.dir = dir
            var last: (any Error)?
            for _ in 0..<3 {
                let port = try DaemonProcess.freePort()
                let server = try Background(
                    "/usr/bin/python3", [Fixtures.root + "/scripts/fake-github.py", "--port", "\(port)"] + arguments, log: dir + "/fake-github-\(port).log")
                server.graceful = false
                do {
                    try server.wait("the fake GitHub", timeout: 10) {
                        (try? RawHTTPClient(port: port, timeoutSeconds: 1).request("GET", "/_control/state"))?.status == 200
                    }
                    self.server = server
                    self.port = port
                    return
                } catch {
                    last = error
                    server.stop()
                }
            }
            throw last!
        }

        func state() throws -> [String: Any] { try RawHTTPClient(port: port).request("GET", "/_control/state").json }
        func control(_ path: String, _ body: [String: Any]) throws -> [String: Any] {
            try RawHTTPClient(port: port).request(
                "POST", "/_control/\(path)", headers: [("Content-Type", "application/json")], body: try JSONSerialization.data(withJSONObject: body)
            ).json
        }
        func statuses() throws -> [[String: Any]] { try state()["statuses"] as? [[String: Any]] ?? [] }
        func violations() throws -> [String] { try state()["violations"] as? [String] ?? [] }
    }

    static let token = "ghp_fake_\(UUID().uuidString.prefix(8))"

    static func daemon(repo: GitRepo, fake: FakeGitHub, github: String, extraTask: String = "", publicURL: Bool = false) throws -> DaemonProcess {
        let tokenFile = fake.dir + "/token"  // removed with the test's directory
        FileManager.default.createFile(atPath: tokenFile, contents: Data(Self.token.utf8), attributes: [.posixPermissions: 0o600])
        var config = try TestEnvironment.buildConfig()
        config += "\ngithub: { api_url: \"\(fake.url)\", \(github.replacingOccurrences(of: "TOKENFILE", with: tokenFile)), reconcile_interval: \"2s\" }\n"
        config += "tasks:\n" + PipelineSystemTests.task("web", repo: repo, image: repo.name, extra: extraTask)
        let daemon = try DaemonProcess(extraConfig: config)
        if publicURL { try daemon.appendConfig("public_url: \"http://127.0.0.1:\(daemon.port)\"\n") }
        return daemon
    }

    @Test func pushesGetPendingThenSuccessOrFailure() throws {
        let dir = "/tmp/slipway-gh-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fake = try FakeGitHub(arguments: ["--token", Self.token], dir: dir)
        let repo = try GitRepo(name: PipelineSystemTests.name("status"))
        let sha = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile(), "app/hello.txt": "x"])
        let daemon = try Self.daemon(repo: repo, fake: fake, github: "token_file: \"TOKENFILE\"")
        try daemon.start()
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        #expect(try daemon.waitForRun("sw1").status == "Succeeded")
        try daemon.waitUntil("the success status", timeout: 30) { try fake.statuses().contains { $0["state"] as? String == "success" } }
        let statuses = try fake.statuses()
        #expect(statuses.map { $0["state"] as? String ?? "" } == ["pending", "pending", "success"], "\(statuses)")
        #expect(statuses.allSatisfy { $0["sha"] as? String == sha && $0["context"] as? String == "slipway/web" })
        let description = statuses.last?["description"] as? String ?? ""
        #expect(description == "sw1 succeeded" || description.hasPrefix("sw1 succeeded in "), "\(description)")
        let violations = try fake.violations()
        #expect(violations.isEmpty, "\(violations)")
        let show = try cli(daemon, ["run", "show", "sw1"]).out
        #expect(show.contains("GitHub status") && show.contains("delivered"), "\(show)")
        // A failing build posts failure.
        let bad = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile("RUN false\n")])
        try daemon.push(repo.pushPayload(after: bad, files: ["app/Dockerfile"]))
        #expect(try daemon.waitForRun("sw2").status == "Failed")
        try daemon.waitUntil("the failure status", timeout: 30) {
            try fake.statuses().contains { $0["state"] as? String == "failure" && $0["sha"] as? String == bad }
        }
        #expect(!daemon.log.contains(Self.token), "the token never reaches a log")
    }

    @Test func statusesSurviveOutagesRateLimitsAndRestarts() throws {
        let dir = "/tmp/slipway-gh-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fake = try FakeGitHub(arguments: ["--token", Self.token], dir: dir)
        let repo = try GitRepo(name: PipelineSystemTests.name("outage"))
        let sha = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile(), "app/hello.txt": "x"])
        let daemon = try Self.daemon(repo: repo, fake: fake, github: "token_file: \"TOKENFILE\"")
        try daemon.start()
        // 500 three times, then a 403 rate limit that says to wait 2 s: everything still arrives, in order.
        _ = try fake.control("fail", ["count": 3, "status": 500])
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        #expect(try daemon.waitForRun("sw1").status == "Succeeded")
        try daemon.waitUntil("statuses after the outage", timeout: 60) { try fake.statuses().count == 3 }
        _ = try fake.control("fail", ["count": 1, "status": 403, "headers": ["Retry-After": "2", "X-RateLimit-Remaining": "0"]])
        let started = Date()
        _ = try cli(daemon, ["task", "run", "web", "--no-logs"])
        #expect(try daemon.waitForRun("sw2").status == "Succeeded")
        try daemon.waitUntil("statuses after the rate limit", timeout: 60) { try fake.statuses().count == 6 }
        #expect(Date().timeIntervalSince(started) >= 2, "the Retry-After was waited out")
        // GitHub down while the daemon restarts: the outbox resumes after the restart.
        _ = try fake.control("fail", ["count": 1000, "status": 502])
        _ = try cli(daemon, ["task", "run", "web", "--no-logs"])
        #expect(try daemon.waitForRun("sw3").status == "Succeeded")
        daemon.signal(SIGTERM)
        #expect(daemon.waitForExit() == 0)
        _ = try fake.control("fail", ["count": 0])
        try daemon.start()
        try daemon.waitUntil("the statuses of sw3 after the restart", timeout: 60) {
            try fake.statuses().filter { ($0["description"] as? String ?? "").hasPrefix("sw3") }.count == 3
        }
    }

    @Test func hookCreateIsIdempotentAndMissedDeliveriesAreRedelivered() throws {
        let dir = "/tmp/slipway-gh-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fake = try FakeGitHub(arguments: ["--token", Self.token], dir: dir)
        let repo = try GitRepo(name: PipelineSystemTests.name("hook"))
        let sha = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile(), "app/hello.txt": "x"])
        let daemon = try Self.daemon(repo: repo, fake: fake, github: "token_file: \"TOKENFILE\", statuses: false", publicURL: true)
        let name = "private/\(repo.name)"
        _ = try fake.control("hook", ["repo": name, "url": "https://other.example.com/hook"])
        try daemon.start()
        let first = try cli(daemon, ["github", "hook", "create", "--repo", name])
        #expect(first.status == 0 && first.out.contains("Created"), "\(first.out) \(first.err)")
        let second = try cli(daemon, ["github", "hook", "create", "--repo", name])
        #expect(second.status == 0 && second.out.contains("Updated"), "\(second.out) \(second.err)")
        let hooks = (try fake.state()["hooks"] as? [String: Any])?[name] as? [[String: Any]] ?? []
        #expect(hooks.count == 2, "ours once, the other service's untouched: \(hooks)")
        let ours = hooks.first { (($0["config"] as? [String: Any])?["url"] as? String)?.hasSuffix("/webhooks/github") == true }
        #expect((ours?["events"] as? [String]) == ["push", "pull_request"])
        #expect(((ours?["config"] as? [String: Any])?["secret"] as? String) == DaemonProcess.secret)
        let list = try cli(daemon, ["github", "hook", "list", "--repo", name, "--output", "json"])
        #expect(list.out.contains("/webhooks/github") && !list.out.contains("other.example.com"))
        // The daemon is down while GitHub sends a push: recorded as failed; the next start asks for it again.
        daemon.signal(SIGTERM)
        #expect(daemon.waitForExit() == 0)
        var payload = try JSONSerialization.jsonObject(with: repo.pushPayload(after: sha, files: ["app/Dockerfile"])) as! [String: Any]
        payload["test_nonce"] = "missed"
        let sent = try fake.control("deliver", ["repo": name, "event": "push", "payload": payload])
        #expect((sent["status"] as? String ?? "").hasPrefix("failed to connect"), "\(sent)")
        try daemon.start()
        let run = try daemon.waitForRun("sw1", timeout: 60)
        #expect(run.status == "Succeeded", "\(daemon.runLog("sw1"))")
        #expect(try daemon.storedDeliveries().map(\.id).contains(sent["guid"] as? String ?? "?"))
        usleep(4_500_000)  // two more reconcile rounds: no second redelivery of the same GUID
        let deliveries = (try fake.state()["deliveries"] as? [String: Any])?.values.compactMap { $0 as? [[String: Any]] }.flatMap { $0 } ?? []
        #expect(deliveries.filter { $0["redelivery"] as? Bool == true }.count == 1)
        let deleted = try cli(daemon, ["github", "hook", "delete", "--repo", name])
        #expect(deleted.status == 0, "\(deleted.err)")
        #expect(((try fake.state()["hooks"] as? [String: Any])?[name] as? [[String: Any]])?.count == 1, "the other hook stays")
        let violations = try fake.violations()
        #expect(violations.isEmpty, "\(violations)")
    }

    @Test func anAppInstallationTokenFetchesAPrivateRepository() throws {
        let dir = "/tmp/slipway-gh-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let key = dir + "/app.pem", pub = dir + "/app.pub"
        #expect(try run("/usr/bin/openssl", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key]).status == 0)
        chmod(key, 0o600)
        #expect(try run("/usr/bin/openssl", ["pkey", "-in", key, "-pubout", "-out", pub]).status == 0)
        // The installation token GitHub hands out is the one the (private) git server accepts.
        let fake = try FakeGitHub(
            arguments: ["--app-id", "4242", "--installation-id", "77", "--app-public-key", pub, "--installation-token", TestEnvironment.token], dir: dir)
        let repo = try GitRepo(name: PipelineSystemTests.name("app"))
        let sha = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile(), "app/hello.txt": "x"])
        let tokenless = PipelineSystemTests.task("web", repo: repo, image: repo.name, token: nil)
        var config = try TestEnvironment.buildConfig()
        config += "\ngithub: { api_url: \"\(fake.url)\", app: { id: 4242, installation_id: 77, private_key_file: \"\(key)\" } }\n"
        config += "tasks:\n" + tokenless
        let daemon = try DaemonProcess(extraConfig: config)
        try daemon.start()
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        let run = try daemon.waitForRun("sw1")
        #expect(run.status == "Succeeded", "\(daemon.runLog("sw1"))")
        try daemon.waitUntil("the success status", timeout: 30) { try fake.statuses().contains { $0["state"] as? String == "success" } }
        let violations = try fake.violations()
        #expect(violations.isEmpty, "\(violations)")
        #expect(!(try fake.state()["tokens"] as? [String] ?? []).isEmpty, "an installation token was issued for the JWT")
        #expect(!daemon.runLog("sw1").contains(TestEnvironment.token) && !daemon.log.contains(TestEnvironment.token))
    }
}
