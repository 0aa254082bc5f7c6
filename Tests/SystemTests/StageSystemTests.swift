import Foundation
import SlipwayCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The stage pipeline on the real parts: builds and pushes overlap, a push survives a crash,
/// an old data_dir upgrades in place, tag and pull-request triggers.
@Suite(.serialized, .enabled(if: TestEnvironment.shouldRun, TestEnvironment.skipMessage))
struct StageSystemTests {
    /// The registry behind a proxy that holds every request 0.4 s: pushes take seconds.
    static func slowRegistry(_ dir: String) throws -> (Background, String) {
        // A free port can be taken by another suite's daemon before the proxy binds it: try another.
        var lastError: (any Error)?
        for _ in 0..<3 {
            let port = try DaemonProcess.freePort()
            let proxy = try Background(
                "/usr/bin/python3",
                [Fixtures.root + "/scripts/slow-proxy.py", "--port", "\(port)", "--target", TestEnvironment.registry, "--delay", "0.4"],
                log: dir + "/slow-proxy-\(port).log")
            proxy.graceful = false
            do {
                try proxy.wait("the slow proxy", timeout: 10) {
                    (try? RawHTTPClient(port: port, timeoutSeconds: 2).request("GET", "/v2/"))?.status == 401
                }
                return (proxy, "127.0.0.1:\(port)")
            } catch {
                lastError = error
                proxy.stop()
            }
        }
        throw lastError!
    }

    /// State rows of a run: (phase, at).
    static func phases(_ daemon: DaemonProcess, _ runID: String) throws -> [(String, String)] {
        let db = try SQLiteConnection(path: daemon.databasePath, readOnly: true)
        return try db.prepare(
            "SELECT s.phase, s.at FROM run_states s JOIN runs r ON r.id = s.run WHERE r.run_id = ? ORDER BY s.seq"
        ).bind([.text(runID)]).rows { ($0.text(0), $0.text(1)) }
    }

    @Test func aBuildStartsWhileThePreviousRunPushes() throws {
        let repo = try GitRepo(name: PipelineSystemTests.name("overlap"))
        let sha = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile(), "app/hello.txt": "x"])
        let scratch = "/tmp/slipway-overlap-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let (proxy, slow) = try Self.slowRegistry(scratch)
        defer { proxy.stop() }
        // Two tasks on the same repository: one push queues two runs, one build slot.
        let tasks = ["one", "two"].map { name in
            """
              - name: \(name)
                context: "\(repo.url)#main:app"
                tags: ["\(slow)/\(repo.name)-\(name):{{.Run.ID}}"]
                git_token_file: "\(TestEnvironment.tokenFile)"
            """
        }
        let daemon = try PipelineSystemTests.daemon(tasks: tasks, maxConcurrent: 1, extraRegistry: slow)
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        #expect(try daemon.waitForRun("sw1").status == "Succeeded", "\(daemon.runLog("sw1"))")
        #expect(try daemon.waitForRun("sw2").status == "Succeeded", "\(daemon.runLog("sw2"))")
        let first = try Self.phases(daemon, "sw1")
        let second = try Self.phases(daemon, "sw2")
        let firstPushEnded = try #require(first.last { $0.0 == "ended" }?.1)
        let secondBuildStarted = try #require(second.first { $0.0 == "building" }?.1)
        // ISO-8601 UTC strings of one format order like the instants they name.
        #expect(secondBuildStarted < firstPushEnded, "run 2 built while run 1 pushed: \(first) / \(second)")
        #expect(first.map(\.0).contains("push-wait") && first.map(\.0).contains("pushing"))
    }

    @Test func kill9DuringAPushResumesWithoutRebuilding() throws {
        let repo = try GitRepo(name: PipelineSystemTests.name("pushcrash"))
        let sha = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile("RUN echo a > /a\nRUN echo b > /b\n"), "app/hello.txt": "x"])
        let scratch = "/tmp/slipway-pushcrash-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let (proxy, slow) = try Self.slowRegistry(scratch)
        defer { proxy.stop() }
        let daemon = try PipelineSystemTests.daemon(
            tasks: [PipelineSystemTests.task(repo: repo, tags: ["\(slow)/\(repo.name):{{.Run.ID}}"])], extraRegistry: slow)
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        try daemon.waitUntil("sw1 pushing") { daemon.runLog("sw1").contains("$ docker push") }
        daemon.signal(SIGKILL)
        daemon.waitForExit()
        #expect(try daemon.runs().first?.status == "Running")
        try daemon.start()
        let run = try daemon.waitForRun("sw1")
        let log = daemon.runLog("sw1")
        #expect(run.status == "Succeeded", "\(log)")
        #expect(log.components(separatedBy: "$ docker build").count - 1 == 1, "built once:\n\(log)")
        #expect(log.contains("resuming the push of its kept images"))
        #expect(try daemon.runs().count == 1, "no second run: the same ID finished")
        #expect(run.digests.contains("sha256:"))
    }

    /// A data_dir written by the previous release (checked in) upgrades in place and stays readable.
    @Test func previousReleaseDataDirUpgradesInPlace() throws {
        let daemon = try DaemonProcess()
        let fixture = Fixtures.root + "/Tests/Fixtures/upgrade-v2"
        try FileManager.default.createDirectory(atPath: daemon.dir + "/data/runs", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: fixture + "/slipway.sqlite", toPath: daemon.databasePath)
        for log in try FileManager.default.contentsOfDirectory(atPath: fixture + "/runs") {
            try FileManager.default.copyItem(atPath: fixture + "/runs/" + log, toPath: daemon.dir + "/data/runs/" + log)
        }
        try daemon.start()
        let list = try cli(daemon, ["run", "list", "--output", "json"])
        #expect(list.status == 0, "\(list.err)")
        let runs = try AdminAPI.decoder.decode([AdminAPI.Run].self, from: Data(list.out.utf8))
        #expect(Set(runs.map(\.id)) == ["sw1", "sw2", "sw3", "sw4"])
        let show = try cli(daemon, ["run", "show", "sw1", "--output", "json"])
        let sw1 = try AdminAPI.decoder.decode(AdminAPI.Run.self, from: Data(show.out.utf8))
        #expect(sw1.status == "Succeeded" && sw1.trigger == "push" && sw1.startedAt != nil && sw1.finishedAt != nil)
        #expect(sw1.images.first?.digest.hasPrefix("sha256:") == true)
        let sw3 = runs.first { $0.id == "sw3" }
        #expect(sw3?.trigger == "manual")
        // The legacy queued push retry is still a push retry (kind), not a rebuild.
        let sw4 = runs.first { $0.id == "sw4" }
        #expect(sw4?.kind == "push-retry", "\(String(describing: sw4))")
        let logs = try cli(daemon, ["logs", "--run-id", "sw1"])
        #expect(logs.out.contains("Run sw1 succeeded"), "\(logs.out)")
        // The form-encoded delivery stored before media types were recorded still decodes.
        let event = try cli(daemon, ["event", "show", "3", "--output", "json"])
        #expect(event.out.contains("public/fixture") || event.out.contains("fixture.git"), "\(event.out)")
        // New deliveries append after the old ones; the body of an old one is a duplicate.
        let db = try SQLiteConnection(path: daemon.databasePath, readOnly: true)
        #expect(try db.prepare("PRAGMA user_version").rows { $0.int(0) }.first == Int64(Migration.all.last!.version))
        #expect(try db.prepare("SELECT COUNT(*) FROM event_bodies").rows { $0.int(0) }.first == 3)
    }

    @Test func semverTagPushPushesEveryTag() throws {
        let repo = try GitRepo(name: PipelineSystemTests.name("release"))
        let sha = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile(), "app/hello.txt": "x"])
        let image = "\(TestEnvironment.registry)/\(repo.name)"
        let task = """
              - name: web
                context: "\(repo.url)#main:app"
                tags: ["\(image):{{.Semver}}", "\(image):{{.Semver.Minor}}", "\(image):{{.Semver.Major}}", "\(image):latest", "\(image):pr-{{.PR}}"]
                git_token_file: "\(TestEnvironment.tokenFile)"
                trigger: { branches: ["main", "release/*"], tags: ["v*"] }
            """
        let daemon = try PipelineSystemTests.daemon(tasks: [task])
        var payload = try JSONSerialization.jsonObject(with: repo.pushPayload(after: sha, files: [])) as! [String: Any]
        payload["ref"] = "refs/tags/v1.2.3"
        try daemon.push(try JSONSerialization.data(withJSONObject: payload))
        let run = try daemon.waitForRun("sw1")
        #expect(run.status == "Succeeded", "\(daemon.runLog("sw1"))")
        let tags = try Self.registryTags(repo.name)
        #expect(Set(tags) == ["1.2.3", "1.2", "1", "latest"], "\(tags)")
        #expect(daemon.runLog("sw1").contains("left out: {{.PR}} is empty"))
        let show = try AdminAPI.decoder.decode(AdminAPI.Run.self, from: Data(try cli(daemon, ["run", "show", "sw1", "--output", "json"]).out.utf8))
        #expect(show.trigger == "tag")
        // A release branch matches its glob.
        let release = try repo.commit(["app/hello.txt": "y"], branch: "release/2.0")
        try daemon.push(repo.pushPayload(after: release, branch: "release/2.0", files: ["app/hello.txt"]))
        #expect(try daemon.waitForRun("sw2").status == "Succeeded", "\(daemon.runLog("sw2"))")
        #expect(daemon.runLog("sw2").contains("left out: {{.Semver}} is empty"), "a branch build pushes latest alone")
        // Another branch matches none of the globs, and the trace says so.
        let other = try repo.commit(["app/hello.txt": "z"], branch: "feature/x")
        let seq = try daemon.push(repo.pushPayload(after: other, branch: "feature/x", files: ["app/hello.txt"]))
        try daemon.waitUntil("the trace") { try daemon.traces(event: seq)["web"] != nil }
        #expect(try daemon.traces(event: seq)["web"]?.contains("matches none of trigger.branches") == true)
    }

    @Test func scheduleQueuesTimerRunsAndCatchesUpOnce() throws {
        let repo = try GitRepo(name: PipelineSystemTests.name("nightly"))
        let sha = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile(), "app/hello.txt": "x"])
        let task = PipelineSystemTests.task("nightly", repo: repo, image: repo.name, extra: "    trigger: { schedule: [\"* * * * *\"] }\n")
        let daemon = try PipelineSystemTests.daemon(tasks: [task])
        try daemon.waitUntil("a timer run", timeout: 70) { try !daemon.runs().isEmpty }
        let run = try daemon.waitForRun("sw1")
        #expect(run.status == "Succeeded" && run.commit == sha, "\(daemon.runLog("sw1"))")
        let show = try AdminAPI.decoder.decode(AdminAPI.Run.self, from: Data(try cli(daemon, ["run", "show", "sw1", "--output", "json"]).out.utf8))
        #expect(show.trigger == "timer")
        let events = try cli(daemon, ["event", "list", "--output", "json"]).out
        #expect(events.contains("\"schedule\"") && events.contains("\"slipway\""), "\(events)")
        // Stopped across a slot: at the next start the missed slot runs once. Waiting for the next
        // minute is the scenario (time has to pass a slot); the check after the restart waits on
        // the cursor, which the service saves only after appending the catch-up events.
        daemon.signal(SIGTERM)
        #expect(daemon.waitForExit() == 0)
        let before = try Self.scheduleEvents(daemon)
        let stoppedAt = try Self.scheduleCursor(daemon)
        #expect(stoppedAt > 0)
        while Int64(Date().timeIntervalSince1970) / 60 <= stoppedAt { usleep(200_000) }
        let restartMinute = Int64(Date().timeIntervalSince1970) / 60
        try daemon.start()
        try daemon.waitUntil("the schedule caught up", timeout: 10) { try Self.scheduleCursor(daemon) >= restartMinute }
        #expect(try Self.scheduleEvents(daemon) == before + 1, "one catch-up event for the missed slots")
        #expect(daemon.log.contains("schedule slot missed while stopped"))
    }

    static func scheduleCursor(_ daemon: DaemonProcess) throws -> Int64 {
        let db = try SQLiteConnection(path: daemon.databasePath, readOnly: true)
        return try db.prepare("SELECT seq FROM cursors WHERE name = 'schedule'").rows { $0.int(0) }.first ?? 0
    }

    static func scheduleEvents(_ daemon: DaemonProcess) throws -> Int64 {
        let db = try SQLiteConnection(path: daemon.databasePath, readOnly: true)
        return try db.prepare("SELECT COUNT(*) FROM events WHERE event_type = 'schedule'").rows { $0.int(0) }.first ?? 0
    }

    /// docker against the test dockerd, logged in to the test registry through a DOCKER_CONFIG of its own.
    static func docker(_ args: [String], config: String) throws -> (status: Int32, out: String, err: String) {
        let user = try TestEnvironment.require("SLIPWAY_TEST_REGISTRY_USER")
        let auth = Data("\(user):\(TestEnvironment.registryPassword)".utf8).base64EncodedString()
        try FileManager.default.createDirectory(atPath: config, withIntermediateDirectories: true)
        try #"{"auths":{"\#(TestEnvironment.registry)":{"auth":"\#(auth)"}}}"#.write(toFile: config + "/config.json", atomically: true, encoding: .utf8)
        return try run(
            try TestEnvironment.require("SLIPWAY_TEST_DOCKER"), args,
            environment: [
                "DOCKER_HOST": try TestEnvironment.require("SLIPWAY_TEST_DOCKER_HOST"), "DOCKER_CONFIG": config, "PATH": "/usr/bin:/bin",
                "DOCKER_BUILDKIT": "0",
            ])
    }

    /// Builds `FROM busybox` plus `step` as `image` and pushes it to the test registry.
    static func publishBase(_ image: String, step: String, scratch: String) throws {
        let context = scratch + "/base-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: context, withIntermediateDirectories: true)
        try "FROM \(TestEnvironment.baseImage)\n\(step)\n".write(toFile: context + "/Dockerfile", atomically: true, encoding: .utf8)
        let build = try docker(["build", "--network", "none", "-t", image, context], config: scratch + "/docker")
        #expect(build.status == 0, "\(build.err)")
        let push = try docker(["push", image], config: scratch + "/docker")
        #expect(push.status == 0, "\(push.err)")
    }

    @Test func aNewBaseImageRebuildsTheTasksBuiltOnIt() throws {
        let repo = try GitRepo(name: PipelineSystemTests.name("based"))
        let scratch = "/tmp/slipway-base-\(UUID().uuidString.prefix(6))"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let base = "\(TestEnvironment.registry)/\(repo.name)-base:1"
        try Self.publishBase(base, step: "RUN echo one > /base-version", scratch: scratch)
        let sha = try repo.commit([
            "app/Dockerfile": "ARG BASE=\(base)\nFROM $BASE\nRUN cat /base-version\nCOPY hello.txt /hello.txt\n", "app/hello.txt": "x",
        ])
        var config = try TestEnvironment.buildConfig()
        config = config.replacingOccurrences(of: "default_timeout: \"5m\"", with: "default_timeout: \"5m\", base_image_poll: \"2s\"")
        config += "\ntasks:\n" + PipelineSystemTests.task("web", repo: repo, image: repo.name)
        let daemon = try DaemonProcess(extraConfig: config)
        try daemon.start()
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        #expect(try daemon.waitForRun("sw1").status == "Succeeded", "\(daemon.runLog("sw1"))")
        let show = try cli(daemon, ["task", "show", "web", "--output", "json"])
        let task = try AdminAPI.decoder.decode(AdminAPI.Task.self, from: Data(show.out.utf8))
        #expect(task.baseImages?.map(\.image) == [base], "\(show.out)")
        #expect(task.baseImages?.first?.digest.hasPrefix("sha256:") == true)
        #expect(try cli(daemon, ["task", "show", "web"]).out.contains("Base image   \(base) sha256:"))
        // A new base image under the same tag: one poll later the task is rebuilt.
        try Self.publishBase(base, step: "RUN echo two > /base-version", scratch: scratch)
        try daemon.waitUntil("a base-image run", timeout: 60) { try daemon.runs().count >= 2 }
        let rebuilt = try daemon.waitForRun("sw2")
        #expect(rebuilt.status == "Succeeded", "\(daemon.runLog("sw2"))")
        #expect(daemon.runLog("sw2").contains("two"), "built on the new base")
        let run = try AdminAPI.decoder.decode(AdminAPI.Run.self, from: Data(try cli(daemon, ["run", "show", "sw2", "--output", "json"]).out.utf8))
        #expect(run.trigger == "base-image" && run.commit == sha)
        // Two more polls of the unchanged image (its checked_at moves twice) add no event and no run.
        var seen = try Self.baseImageChecks(daemon)
        for poll in 1...2 {
            try daemon.waitUntil("base image poll \(poll)", timeout: 15) { try Self.baseImageChecks(daemon) != seen }
            seen = try Self.baseImageChecks(daemon)
        }
        #expect(try Self.baseImageEvents(daemon) == 1, "one change, one event")
        #expect(try daemon.runs().count == 2, "one change, one rebuild")
    }

    static func baseImageChecks(_ daemon: DaemonProcess) throws -> [String] {
        let db = try SQLiteConnection(path: daemon.databasePath, readOnly: true)
        return try db.prepare("SELECT checked_at FROM base_image_watch ORDER BY image").rows { $0.text(0) }
    }

    static func baseImageEvents(_ daemon: DaemonProcess) throws -> Int64 {
        let db = try SQLiteConnection(path: daemon.databasePath, readOnly: true)
        return try db.prepare("SELECT COUNT(*) FROM events WHERE event_type = 'base_image'").rows { $0.int(0) }.first ?? 0
    }

    static func pullRequestPayload(repo: GitRepo, number: Int, sha: String, fork: Bool) -> Data {
        let head = fork ? "someone/\(repo.name)" : "test/\(repo.name)"
        let payload: [String: Any] = [
            "action": "synchronize", "number": number,
            "pull_request": [
                "number": number,
                "head": [
                    "ref": "feature", "sha": sha,
                    "repo": ["full_name": head, "clone_url": fork ? "http://127.0.0.1:1/nowhere/\(repo.name).git" : repo.url],
                ],
                "base": ["ref": "main", "repo": ["full_name": "test/\(repo.name)", "clone_url": repo.url]],
            ],
            "repository": ["full_name": "test/\(repo.name)", "clone_url": repo.url],
        ]
        return try! JSONSerialization.data(withJSONObject: payload)
    }

    @Test func pullRequestsBuildWithoutPushingOrSecrets() throws {
        let repo = try GitRepo(name: PipelineSystemTests.name("pr"))
        _ = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile("ARG NPM\nRUN echo \"npm=[$NPM]\"\n"), "app/hello.txt": "x"])
        // The PR heads exist only as refs/pull/N/head on the base repository, as on GitHub.
        let own = try repo.commit(["app/hello.txt": "from a branch"], branch: "feature")
        try repo.git(["push", "--quiet", "--force", repo.bare, "\(own):refs/pull/7/head"], in: repo.work)
        let forked = try repo.commit(["app/hello.txt": "from a fork"], branch: "fork-feature")
        try repo.git(["push", "--quiet", "--force", repo.bare, "\(forked):refs/pull/8/head"], in: repo.work)
        try repo.git(["push", "--quiet", "--force", repo.bare, ":refs/heads/feature", ":refs/heads/fork-feature"], in: repo.work)
        let secret = "/tmp/slipway-npm-\(UUID().uuidString.prefix(6))"
        FileManager.default.createFile(atPath: secret, contents: Data("npm-secret-value-123".utf8), attributes: [.posixPermissions: 0o600])
        defer { try? FileManager.default.removeItem(atPath: secret) }
        let task = PipelineSystemTests.task(
            "web", repo: repo, image: repo.name,
            extra: "    secret_build_args: { NPM: \"\(secret)\" }\n    trigger: { pull_requests: { branches: [\"main\"] } }\n")
        let daemon = try PipelineSystemTests.daemon(tasks: [task])
        let seq = try daemon.push(Self.pullRequestPayload(repo: repo, number: 7, sha: own, fork: false), event: "pull_request")
        let run = try daemon.waitForRun("sw1")
        let log = daemon.runLog("sw1")
        #expect(run.status == "Succeeded" && run.commit == own, "\(log)")
        #expect(log.contains("npm=[]") && !log.contains("npm-secret-value"), "no secret build args")
        #expect(log.contains("never pushed") && !log.contains("$ docker push"))
        #expect(try Self.registryTags(repo.name).isEmpty, "the registry is unchanged")
        #expect(try daemon.traces(event: seq)["web"]?.contains("pull request #7") == true)
        let shown = try AdminAPI.decoder.decode(AdminAPI.Run.self, from: Data(try cli(daemon, ["run", "show", "sw1", "--output", "json"]).out.utf8))
        #expect(shown.trigger == "pull_request" && shown.branch == "feature")
        // From a fork: fetched from the task's own repository (the fork's URL leads nowhere), no credentials.
        try daemon.push(Self.pullRequestPayload(repo: repo, number: 8, sha: forked, fork: true), event: "pull_request")
        let forkRun = try daemon.waitForRun("sw2")
        let forkLog = daemon.runLog("sw2")
        #expect(forkRun.status == "Succeeded" && forkRun.commit == forked, "\(forkLog)")
        #expect(forkLog.contains("from a fork: no registry credentials") && forkLog.contains("registry credentials for: none"))
        #expect(!forkLog.contains("127.0.0.1:1/nowhere"))
    }

    static func registryTags(_ name: String) throws -> [String] {
        let auth = Data("\(TestEnvironment.values["SLIPWAY_TEST_REGISTRY_USER"] ?? ""):\(TestEnvironment.registryPassword)".utf8)
            .base64EncodedString()
        let r = try RawHTTPClient(port: TestEnvironment.registryPort).request(
            "GET", "/v2/\(name)/tags/list", headers: [("Authorization", "Basic \(auth)")], body: Data())
        return (r.json["tags"] as? [String]) ?? []
    }
}
