import Foundation
import SlipwayCore
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// scripts/install.sh and the unit under a real systemd (PID 1 in a container on the test dockerd).
@Suite(.serialized, .enabled(if: TestEnvironment.shouldRun, TestEnvironment.skipMessage))
struct SystemdInstallTests {
    static let docker = "/usr/bin/docker"

    final class Machine {
        let name = "slipway-systemd-\(UUID().uuidString.prefix(8).lowercased())"
        let setup = "/tmp/slipway-sd-\(UUID().uuidString.prefix(8))"
        var env: [String: String] {
            var e = ProcessInfo.processInfo.environment
            e["DOCKER_HOST"] = TestEnvironment.values["SLIPWAY_TEST_DOCKER_HOST"]
            return e
        }

        init() throws {
            try FileManager.default.createDirectory(atPath: setup, withIntermediateDirectories: true)
            let socket = try TestEnvironment.require("SLIPWAY_TEST_DOCKER_HOST").replacingOccurrences(of: "unix://", with: "")
            let result = try run(
                docker,
                [
                    "run", "-d", "--name", name, "--network", "host", "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined",
                    "--tmpfs", "/run", "--tmpfs", "/run/lock", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
                    "-v", "\(Fixtures.root):/src:ro", "-v", "/opt/swift:/opt/swift:ro", "-v", "\(setup):/srv/setup:ro",
                    "-v", "\(socket):/srv/docker.sock", "-v", "\(docker):/usr/local/bin/docker:ro",
                    try TestEnvironment.require("SLIPWAY_TEST_SYSTEMD_IMAGE"), "/sbin/init",
                ], environment: env)
            guard result.status == 0 else { throw RawHTTPClient.Failure(description: "docker run: \(result.err)") }
        }

        deinit {
            _ = try? run(docker, ["rm", "-f", name], environment: env)
            try? FileManager.default.removeItem(atPath: setup)
        }

        @discardableResult
        func exec(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
            try run(docker, ["exec", name] + args, environment: env)
        }

        func sh(_ script: String) throws -> (status: Int32, out: String, err: String) { try exec(["sh", "-c", script]) }

        func put(_ name: String, _ text: String) throws { try text.write(toFile: "\(setup)/\(name)", atomically: true, encoding: .utf8) }

        func waitUntil(_ what: String, timeout: TimeInterval = 60, _ condition: () throws -> Bool) throws {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if try condition() { return }
                usleep(200_000)
            }
            let journal = (try? sh("journalctl -u slipway --no-pager -n 40 -o cat").out) ?? ""
            throw RawHTTPClient.Failure(description: "timed out waiting for \(what)\n\(journal)")
        }

        func property(_ name: String) throws -> String {
            try exec(["systemctl", "show", "slipway", "-p", name, "--value"]).out.trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    static func config(port: Int, repo: GitRepo, extraTask: Bool = false) -> String {
        var text = """
            listen: "127.0.0.1:\(port)"
            data_dir: "/var/lib/slipway"
            admin_socket: "/run/slipway/slipway.sock"
            webhook: { secret_files: ["/etc/slipway/secrets/webhook"] }
            builds: { docker: "/usr/local/bin/docker", network: "none", buildkit: true, stop_grace: "20s" }
            registries:
              - { server: "\(TestEnvironment.registry)", username: "\(TestEnvironment.values["SLIPWAY_TEST_REGISTRY_USER"] ?? "")", password_file: "/etc/slipway/secrets/registry" }
            tasks:
              - name: web
                context: "\(repo.url)#main:app"
                tags: ["\(TestEnvironment.registry)/\(repo.name):{{.Run.ID}}"]
                git_token_file: "/etc/slipway/secrets/git-token"
                build_args: { VERSION: "{{.Commit.Short}}" }

            """
        if extraTask {
            text += """
                  - name: api
                    context: "\(repo.url)#main:app"
                    tags: ["\(TestEnvironment.registry)/\(repo.name)-api:{{.Run.ID}}"]
                    git_token_file: "/etc/slipway/secrets/git-token"

                """
        }
        return text
    }

    /// A container booted into systemd, with the host's docker group (so the slipway user may use
    /// the mounted docker socket).
    static func bootedMachine() throws -> Machine {
        let machine = try Machine()
        try machine.waitUntil("systemd running") {
            let state = try machine.exec(["systemctl", "is-system-running"]).out.trimmingCharacters(in: .whitespacesAndNewlines)
            return state == "running" || state == "degraded"
        }
        let gid = try run("/usr/bin/getent", ["group", "docker"]).out.split(separator: ":")[2]
        try machine.exec(["groupadd", "-g", String(gid), "docker"])
        return machine
    }

    /// Installed with install.sh, configured for the test registry and git server, started.
    static func runningService() throws -> (machine: Machine, port: Int, repo: GitRepo, sha: String) {
        let machine = try Self.bootedMachine()
        let install = try machine.exec(["/src/scripts/install.sh", "--binary", "/src/.build/debug/slipway"])
        #expect(install.status == 0, "\(install.err)")
        let repo = try GitRepo(name: PipelineSystemTests.name("sd"))
        let sha = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile(), "app/hello.txt": "x"])
        let port = try DaemonProcess.freePort()
        try machine.put("slipway.yaml", Self.config(port: port, repo: repo))
        try machine.put("good.yaml", Self.config(port: port, repo: repo, extraTask: true))
        try machine.put("bad.yaml", Self.config(port: port, repo: repo) + "unknown_key: true\n")
        try machine.put(
            "test.conf", "[Service]\nEnvironment=DOCKER_HOST=unix:///srv/docker.sock\nEnvironment=SLIPWAY_TEST_HANG=1\nWatchdogSec=4s\n")
        let prepared = try machine.sh(
            """
            set -e
            cp /srv/setup/slipway.yaml /etc/slipway/slipway.yaml
            install -m 0600 -o slipway -g slipway \(TestEnvironment.values["SLIPWAY_TEST_REGISTRY_PASSWORD_FILE"].map { "/src/.test-env/\(($0 as NSString).lastPathComponent)" } ?? "") /etc/slipway/secrets/registry
            install -m 0600 -o slipway -g slipway /src/.test-env/git-token /etc/slipway/secrets/git-token
            mkdir -p /etc/systemd/system/slipway.service.d
            cp /srv/setup/test.conf /etc/systemd/system/slipway.service.d/test.conf
            systemctl daemon-reload
            """)
        #expect(prepared.status == 0, "\(prepared.err)")

        // Type=notify: `start` returns once READY=1 was sent, after the port is bound.
        let start = try machine.exec(["systemctl", "start", "slipway"])
        #expect(start.status == 0, "\(start.err)")
        #expect(try machine.exec(["systemctl", "is-active", "slipway"]).out == "active\n")
        #expect((try? RawHTTPClient(port: port).request("GET", "/healthz").status) == 200, "bound before READY=1")
        #expect(try machine.property("StatusText").hasPrefix("Ready"))

        return (machine, port, repo, sha)
    }

    // Each part of the install story is a test of its own on a fresh machine: the first failure
    // does not hide the rest.

    @Test func installScriptCreatesUserSecretAndConfigAndUninstallKeepsData() throws {
        let machine = try Self.bootedMachine()
        let install = try machine.exec(["/src/scripts/install.sh", "--binary", "/src/.build/debug/slipway"])
        #expect(install.status == 0, "\(install.err)")
        #expect(install.out.contains("generated the webhook secret /etc/slipway/secrets/webhook (0600)"))
        #expect(try machine.sh("stat -c '%U %a' /etc/slipway/secrets/webhook").out == "slipway 600\n")
        #expect(try machine.sh("id -nG slipway").out.contains("docker"))
        // A second install keeps the config it finds.
        #expect(
            try machine.exec(["/src/scripts/install.sh", "--binary", "/src/.build/debug/slipway"]).out.contains(
                "kept the existing /etc/slipway/slipway.yaml"))

        // Uninstall keeps config and data unless --purge.
        // The service would have made its data (StateDirectory=): a stand-in for it.
        #expect(try machine.sh("mkdir -p /var/lib/slipway && echo data > /var/lib/slipway/slipway.sqlite").status == 0)
        #expect(try machine.exec(["/src/scripts/uninstall.sh"]).status == 0)
        #expect(
            try machine.sh(
                "test ! -e /usr/local/bin/slipway && test -e /etc/slipway/slipway.yaml && test -e /var/lib/slipway/slipway.sqlite"
            ).status == 0)
        #expect(try machine.exec(["/src/scripts/uninstall.sh", "--purge"]).status == 0)
        #expect(try machine.sh("test ! -e /etc/slipway && ! getent passwd slipway").status == 0)

    }

    @Test func serviceStartsBuildsLogsToTheJournalReloadsAndStopsCleanly() throws {
        let (machine, port, repo, sha) = try Self.runningService()
        // A signed webhook is answered and a build runs.
        let secret = try machine.exec(["cat", "/etc/slipway/secrets/webhook"]).out.trimmingCharacters(in: .whitespacesAndNewlines)
        let body = repo.pushPayload(after: sha, files: ["app/Dockerfile"])
        let signature = HMAC.digest(.sha256, key: Array(secret.utf8), message: Array(body)).hexString
        let answer = try RawHTTPClient(port: port).request(
            "POST", "/webhooks/github",
            headers: [
                ("Content-Type", "application/json"), ("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "sd-1"),
                ("X-Hub-Signature-256", "sha256=\(signature)"),
            ], body: body)
        #expect(answer.status == 202)
        var status = ""
        try machine.waitUntil("sw1 to finish", timeout: 120) {
            let show = try machine.exec(["slipway", "run", "show", "sw1", "--output", "json"])
            status = (try? AdminAPI.decoder.decode(AdminAPI.Run.self, from: Data(show.out.utf8)))?.status ?? ""
            return !["", "Queued", "Running"].contains(status)
        }
        let runLog = try machine.sh("cat /var/lib/slipway/runs/sw1.log").out
        #expect(status == "Succeeded", "\(runLog)")

        // The journal holds the run's lines, build output included, with DESIGN.md's fields.
        let journal = try machine.exec(["journalctl", "-u", "slipway", "RUN_ID=sw1", "-o", "json", "--no-pager"]).out
        let entries = journal.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(entries.count > 5)
        #expect(entries.allSatisfy { $0["RUN_ID"] as? String == "sw1" && $0["SYSLOG_IDENTIFIER"] as? String == "slipway" })
        #expect(
            entries.contains { ($0["MESSAGE"] as? String)?.contains("building version \(sha.prefix(7))") == true },
            "build output in the journal")
        #expect(entries.contains { $0["TASK"] as? String == "web" && $0["COMMIT"] as? String == sha })
        let delivery = try machine.exec(["journalctl", "-u", "slipway", "DELIVERY_ID=sd-1", "-o", "json", "--no-pager"]).out
        #expect(delivery.contains("\"EVENT_SEQ\":\"1\""))
        // Deliveries committed together share one entry with DELIVERY_ID and EVENT_SEQ repeated
        // per delivery: each is found by its id, with the seq it was answered with.
        let answered = Mutex<[String: Int]>([:])
        onThreads(8) { worker in
            guard let client = try? RawHTTPClient(port: port) else { return }
            for n in 0..<5 {
                let id = "sd-group-\(worker)-\(n)"
                let ping = Data(#"{"zen":"\#(id)","hook_id":42}"#.utf8)
                let signature = HMAC.digest(.sha256, key: Array(secret.utf8), message: Array(ping)).hexString
                let headers = [
                    ("Content-Type", "application/json"), ("X-GitHub-Event", "ping"), ("X-GitHub-Delivery", id),
                    ("X-Hub-Signature-256", "sha256=\(signature)"),
                ]
                guard let r = try? client.request("POST", "/webhooks/github", headers: headers, body: ping), r.status == 200,
                    let seq = r.json["event"] as? Int
                else { continue }
                answered.withLock { $0[id] = seq }
            }
        }
        let answers = answered.withLock { $0 }
        #expect(answers.count == 40)
        let stored = try machine.exec(["journalctl", "-u", "slipway", "-o", "json", "--no-pager", "SYSLOG_IDENTIFIER=slipway"]).out
        var logged: [String: [String]] = [:]
        for line in stored.split(separator: "\n") {
            guard let entry = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                ["delivery stored", "deliveries stored"].contains(entry["MESSAGE"] as? String)
            else { continue }
            let ids = (entry["DELIVERY_ID"] as? [String]) ?? [entry["DELIVERY_ID"] as? String].compactMap { $0 }
            let seqs = (entry["EVENT_SEQ"] as? [String]) ?? [entry["EVENT_SEQ"] as? String].compactMap { $0 }
            #expect(ids.count == seqs.count, "\(entry)")
            for (id, seq) in zip(ids, seqs) { logged[id, default: []].append(seq) }
        }
        for (id, seq) in answers {
            #expect(logged[id] == ["\(seq)"], "\(id) answered with event \(seq), in the journal as \(logged[id] ?? [])")
        }
        let byID = try machine.exec(["journalctl", "-u", "slipway", "DELIVERY_ID=sd-group-3-4", "-o", "cat", "--no-pager"]).out
        #expect(byID.contains("stored"), "journalctl DELIVERY_ID= finds a delivery of a group: \(byID)")

        // Reload with a broken config: keeps serving, logs the error at err level.
        _ = try machine.sh("cp /srv/setup/bad.yaml /etc/slipway/slipway.yaml && systemctl reload slipway")
        try machine.waitUntil("the refused reload in the journal") {
            try machine.exec(["journalctl", "-u", "slipway", "-p", "err", "--no-pager", "-o", "cat"]).out.contains("reload refused")
        }
        #expect(try machine.exec(["systemctl", "is-active", "slipway"]).out == "active\n")
        #expect((try? RawHTTPClient(port: port).request("GET", "/healthz").status) == 200)
        // With a good one, the new task is there without a restart.
        let pid = try machine.property("MainPID")
        _ = try machine.sh("cp /srv/setup/good.yaml /etc/slipway/slipway.yaml && systemctl reload slipway")
        try machine.waitUntil("two tasks") {
            (try? AdminAPI.decoder.decode(
                [AdminAPI.Task].self, from: Data(machine.exec(["slipway", "task", "list", "--output", "json"]).out.utf8)))?.count == 2
        }
        #expect(try machine.property("MainPID") == pid, "reloaded in place")

        // Stop: clean, inside TimeoutStopSec.
        let stopStarted = Date()
        #expect(try machine.exec(["systemctl", "stop", "slipway"]).status == 0)
        #expect(Date().timeIntervalSince(stopStarted) < 30)
        #expect(try machine.property("Result") == "success")
        #expect(try machine.property("ExecMainStatus") == "0")

        // The sandbox's exposure score, as systemd rates it.
        let security = try machine.exec(["systemd-analyze", "security", "slipway.service", "--no-pager"]).out
        let line = security.split(separator: "\n").first { $0.contains("Overall exposure level") }.map(String.init) ?? "no score"
        print("systemd-analyze security: \(line)")
        let afterName = line.components(separatedBy: "slipway.service:").last ?? ""
        let score = Double(afterName.split(separator: " ").first ?? "") ?? 99
        #expect(score <= 2.0, "\(line)")

        withExtendedLifetime(repo) {}
    }

    @Test func watchdogRestartsAHungDaemon() throws {
        let (machine, _, repo, _) = try Self.runningService()
        // The watchdog restarts a hung daemon (SIGUSR2 simulates the hang in test mode).
        let restarts = Int(try machine.property("NRestarts")) ?? 0
        try machine.exec(["systemctl", "kill", "--kill-whom=main", "-s", "SIGUSR2", "slipway"])
        try machine.waitUntil("a watchdog restart", timeout: 40) {
            let restarted = (Int(try machine.property("NRestarts")) ?? 0) > restarts
            return try restarted && machine.exec(["systemctl", "is-active", "slipway"]).out == "active\n"
        }
        #expect(try machine.exec(["journalctl", "-u", "slipway", "--no-pager", "-o", "cat"]).out.contains("Watchdog timeout"))

        withExtendedLifetime(repo) {}
    }

    @Test func debPackageInstallsStartsAndPurges() throws {
        let machine = try Self.bootedMachine()
        let port = try DaemonProcess.freePort()
        // The .deb has the same layout: its postinst creates the user, config and secret; the service starts.
        let deb = try run(
            Fixtures.root + "/scripts/make-deb.sh", ["--binary", Fixtures.root + "/.build/debug/slipway", "--output", machine.setup])
        #expect(deb.status == 0, "\(deb.err)")
        let installed = try machine.sh("dpkg -i /srv/setup/slipway_0.1.0_amd64.deb")
        #expect(installed.status == 0, "\(installed.out)\(installed.err)")
        #expect(try machine.sh("stat -c '%U %a' /etc/slipway/secrets/webhook && id -nG slipway").out.contains("slipway 600\n"))
        _ = try machine.sh("sed -i 's/8080/\(port)/' /etc/slipway/slipway.yaml")
        #expect(try machine.exec(["systemctl", "start", "slipway"]).status == 0)
        #expect(try machine.exec(["systemctl", "is-active", "slipway"]).out == "active\n")
        #expect(try machine.sh("dpkg --purge slipway").status == 0)
        #expect(try machine.sh("test ! -e /usr/local/bin/slipway && test ! -e /etc/slipway").status == 0)
    }
}
