import Foundation
import SlipwayCore
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The parts a build depends on fail — registry, git server, dockerd — and come back. Each test
/// starts its own instance of the part it breaks, so the shared test environment stays up.
@Suite(.serialized, .enabled(if: TestEnvironment.shouldRun, TestEnvironment.skipMessage))
struct RecoverySystemTests {

    /// The registry is down for the whole push: retries, then `Failed` with the images kept
    /// locally; once it is back, `slipway run retry-push` pushes them without building again.
    @Test func registryDownThenRetryPush() throws {
        let port = try DaemonProcess.freePort()
        let registry = "127.0.0.1:\(port)"
        let repo = try GitRepo(name: PipelineSystemTests.name("regdown"))
        let sha = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile(), "app/hello.txt": "x"])
        let task = PipelineSystemTests.task(repo: repo, tags: ["\(registry)/\(repo.name):{{.Run.ID}}", "\(registry)/\(repo.name):latest"])
        let daemon = try PipelineSystemTests.daemon(tasks: [task], extraRegistry: registry)
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        let failed = try daemon.waitForRun("sw1")
        #expect(failed.status == "Failed" && failed.step == "push", "\(failed.status) \(failed.step): \(failed.reason)")
        #expect(failed.reason.contains("connection refused"), "\(failed.reason)")
        let log = daemon.runLog("sw1")
        #expect(log.contains("failed (attempt 3 of 4)"), "retried before giving up")
        #expect(log.contains("slipway run retry-push sw1"), "the log says how to finish")
        let docker = try TestEnvironment.require("SLIPWAY_TEST_DOCKER")
        let env = ["DOCKER_HOST": try TestEnvironment.require("SLIPWAY_TEST_DOCKER_HOST"), "PATH": "/usr/bin:/bin"]
        #expect(try run(docker, ["image", "inspect", "\(registry)/\(repo.name):sw1"], environment: env).status == 0, "image kept locally")
        let shown = try cli(daemon, ["run", "show", "sw1"])
        #expect(shown.out.contains("\(registry)/\(repo.name):sw1 (not pushed)"), "\(shown.out)")

        // Only a run whose push failed can retry it.
        let wrong = try cli(daemon, ["run", "retry-push", "sw99"])
        #expect(wrong.status == 1 && wrong.err.contains("no run with ID 'sw99'"), "\(wrong)")

        // A retry while the registry is still down can be canceled, and retried again later.
        let queued = try cli(daemon, ["run", "retry-push", "sw1", "--no-logs"])
        #expect(queued.status == 0, "\(queued)")
        try daemon.waitUntil("the retry pushing") { daemon.runLog("sw1").contains("retrying the push of") }
        let canceled = try cli(daemon, ["run", "cancel", "sw1"])
        #expect(canceled.out.contains("Run sw1: Canceled"), "\(canceled)")
        #expect(try daemon.waitForRun("sw1").step == "push")

        let server = try Background.registry(port: port, name: repo.name, dir: daemon.dir)
        defer { server.stop() }
        let retried = try cli(daemon, ["run", "retry-push", "sw1"])
        #expect(retried.status == 0, "\(retried.out)\n\(retried.err)")
        #expect(retried.out.contains("retrying the push of"), "\(retried.out)")
        let run = try daemon.waitForRun("sw1")
        #expect(run.status == "Succeeded", "\(run.reason)")
        #expect(try Registry.tags(repo.name, port: port) == ["latest", "sw1"])
        #expect(run.digests.contains("sha256:") && !run.digests.contains("\"\""), "\(run.digests)")
        #expect(!daemon.runLog("sw1").contains("$ docker build", after: "retrying the push"), "nothing built again")
        let again = try cli(daemon, ["run", "retry-push", "sw1"])
        #expect(again.status == 1 && again.err.contains("run sw1 is Succeeded"), "\(again)")
    }

    /// The git server is down: the run ends `Error` saying the server cannot be reached (not
    /// `Failed`: the commit is not at fault); once it is back, a replay of the event builds.
    @Test func gitServerDownIsAnErrorAndResumes() throws {
        let port = try DaemonProcess.freePort()
        let repo = try GitRepo(name: PipelineSystemTests.name("gitdown"))
        let sha = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile(), "app/hello.txt": "x"])
        let url = repo.url.replacingOccurrences(of: TestEnvironment.gitURL, with: "http://127.0.0.1:\(port)")
        let task = PipelineSystemTests.task(repo: repo, tags: ["\(TestEnvironment.registry)/\(repo.name):{{.Run.ID}}"], url: url)
        let daemon = try PipelineSystemTests.daemon(tasks: [task])
        var payload = try JSONSerialization.jsonObject(with: repo.pushPayload(after: sha, files: ["app/Dockerfile"])) as! [String: Any]
        payload["repository"] = ["full_name": "test/\(repo.name)", "clone_url": url]
        let seq = try daemon.push(try JSONSerialization.data(withJSONObject: payload))
        let down = try daemon.waitForRun("sw1")
        #expect(down.status == "Error" && down.step == "fetch", "\(down.status) \(down.step): \(down.reason)")
        #expect(down.reason.contains("cannot reach the git server for \(url)"), "\(down.reason)")
        #expect(!down.reason.contains(TestEnvironment.token))
        #expect(try RawHTTPClient(port: daemon.port).request("GET", "/healthz").status == 200, "the daemon stays healthy")

        let server = try Background.gitServer(port: port)
        defer { server.stop() }
        let replay = try cli(daemon, ["event", "replay", "\(seq)"])
        #expect(replay.status == 0, "\(replay)")
        let run = try daemon.waitForRun("sw2")
        #expect(run.status == "Succeeded", "\(run.reason)\n\(daemon.runLog("sw2"))")
    }

    /// dockerd stops in the middle of a build: the run ends `Error` naming the docker daemon,
    /// Slipway keeps serving, and builds work again once dockerd is back.
    @Test func dockerdStoppedMidBuildIsAnErrorAndResumes() throws {
        let dockerd = try Background.dockerd()
        defer { dockerd.stop() }
        let repo = try GitRepo(name: PipelineSystemTests.name("dockerdown"))
        let sha = try repo.commit([
            "app/Dockerfile": PipelineSystemTests.dockerfile("RUN echo started && sleep 30\n"), "app/hello.txt": "x",
        ])
        var config = try TestEnvironment.buildConfig()
        config += "\ntasks:\n" + PipelineSystemTests.task("web", repo: repo, image: repo.name)
        let daemon = try DaemonProcess(extraConfig: config)
        daemon.environment = ["DOCKER_HOST": Background.faultDockerHost]
        try daemon.start()
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        try daemon.waitUntil("the build running", timeout: 90) { daemon.runLog("sw1").contains("started") }
        dockerd.stop()

        let run = try daemon.waitForRun("sw1", timeout: 60)
        #expect(run.status == "Error" && run.step == "build", "\(run.status) \(run.step): \(run.reason)\n\(daemon.runLog("sw1"))")
        #expect(run.reason.contains("docker daemon"), "\(run.reason)")
        #expect(try RawHTTPClient(port: daemon.port).request("GET", "/healthz").status == 200, "the daemon stays healthy")

        let back = try Background.dockerd()
        defer { back.stop() }
        let sha2 = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile(), "app/hello.txt": "y"])
        try daemon.push(repo.pushPayload(after: sha2, files: ["app/Dockerfile"]))
        let after = try daemon.waitForRun("sw2", timeout: 120)
        #expect(after.status == "Succeeded", "\(after.reason)\n\(daemon.runLog("sw2"))")
    }
}

extension RecoverySystemTests {
    /// `kill -9` at random points (and during builds) while deliveries keep coming and builds run;
    /// after every restart: every 2xx'd delivery is in the log once, nothing stays `Running`, every
    /// matched event has its run, and every run interrupted on its first attempt was retried.
    /// `SLIPWAY_SOAK_KILLS` sets the number of kills (default 10; `SLIPWAY_SOAK_KILLS=100` for a long run).
    @Test func randomKill9SoakKeepsTheInvariants() throws {
        let kills = Int(ProcessInfo.processInfo.environment["SLIPWAY_SOAK_KILLS"] ?? "") ?? 10
        let repo = try GitRepo(name: PipelineSystemTests.name("soak"))
        let sha = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile("RUN sleep 1\n"), "app/hello.txt": "x"])
        let daemon = try PipelineSystemTests.daemon(
            tasks: [PipelineSystemTests.task("web", repo: repo, image: repo.name)], maxConcurrent: 2)
        let acked = Mutex<Set<String>>([])
        let stop = Atomic<Bool>(false)
        let port = daemon.port
        let body = repo.pushPayload(after: sha, files: ["app/hello.txt"])

        // The sender: like GitHub, it redelivers a delivery (same id) until it is acknowledged.
        let sender = Thread {
            var n = 0
            while !stop.load(ordering: .relaxed) {
                let id = "soak-\(n)"
                if let r = try? RawHTTPClient(port: port, timeoutSeconds: 5).request(
                    "POST", "/webhooks/github", headers: DaemonProcess.headers(for: DaemonProcess.distinct(body, id), delivery: id), body: DaemonProcess.distinct(body, id)),
                    r.status == 202 || r.status == 200
                {
                    acked.withLock { _ = $0.insert(id) }
                    n += 1
                }
                usleep(UInt32.random(in: 20_000...150_000))
            }
        }
        sender.start()
        var killedDuringBuild = 0
        for k in 0..<kills {
            if k % 2 == 0 {
                // Aim at a build in progress.
                try? daemon.waitUntil("a build running", timeout: 30) { try daemon.runs().contains { $0.status == "Running" } }
                usleep(UInt32.random(in: 0...800_000))
                if try daemon.runs().contains(where: { $0.status == "Running" }) { killedDuringBuild += 1 }
            } else {
                usleep(UInt32.random(in: 100_000...2_500_000))
            }
            daemon.signal(SIGKILL)
            daemon.waitForExit()
            try daemon.start()
        }
        usleep(1_000_000)
        stop.store(true, ordering: .relaxed)
        while !sender.isFinished { usleep(10_000) }

        // Quiesce: every run reaches a final state.
        try daemon.waitUntil("every run final", timeout: 180) {
            try daemon.runs().allSatisfy { !["Queued", "Running"].contains($0.status) }
        }
        let ackedIDs = acked.withLock { $0 }
        let stored = try daemon.storedDeliveries()
        #expect(ackedIDs.count > 20, "deliveries kept coming: \(ackedIDs.count)")
        #expect(killedDuringBuild >= 1, "at least one kill hit a running build")
        #expect(Set(stored.map(\.id)) == ackedIDs, "exactly the acknowledged deliveries are stored")
        #expect(stored.count == Set(stored.map(\.id)).count, "each once")

        let runs = try daemon.runs()
        let db = try SQLiteConnection(path: daemon.databasePath, readOnly: true)
        let traced = try db.prepare("SELECT e.seq, t.matched, t.run_id FROM events e LEFT JOIN match_traces t ON t.event_seq = e.seq")
            .rows { ($0.int(0), $0.isNull(1) ? nil : $0.int(1), $0.isNull(2) ? nil : $0.text(2)) }
        #expect(traced.allSatisfy { $0.1 == 1 }, "every event was matched: \(traced.filter { $0.1 != 1 }.map(\.0))")
        let runIDs = Set(runs.map(\.runID))
        #expect(traced.allSatisfy { $0.2.map(runIDs.contains) == true }, "every matched event has its run")
        for run in runs {
            #expect(
                run.status == "Succeeded" || (run.status == "Canceled" && run.reason.hasPrefix("superseded by"))
                    || (run.status == "Error" && run.reason == "interrupted by restart"),
                "\(run.runID): \(run.status) \(run.reason)")
        }
        let retried = try db.prepare("SELECT event_seq, attempt FROM runs").rows { ($0.isNull(0) ? -1 : $0.int(0), Int($0.int(1))) }
        for run in runs where run.status == "Error" && run.attempt == 1 {
            let seq = try db.prepare("SELECT event_seq FROM runs WHERE run_id = ?").bind([.text(run.runID)]).rows { $0.int(0) }.first
            #expect(retried.contains { $0.0 == seq && $0.1 == 2 }, "\(run.runID) interrupted on its first attempt was retried")
        }
        #expect(runs.contains { $0.status == "Succeeded" }, "builds did get done")
        // Engine probes keep their (credential-free) scratch under tmp/engines while they run.
        let scratch = ((try? FileManager.default.contentsOfDirectory(atPath: daemon.dir + "/data/tmp")) ?? []).filter { $0 != "engines" }
        #expect(scratch.isEmpty, "no scratch with credentials left: \(scratch)")
    }
}

extension String {
    /// Whether `needle` occurs after the first occurrence of `marker`.
    func contains(_ needle: String, after marker: String) -> Bool {
        guard let start = range(of: marker) else { return false }
        return self[start.upperBound...].contains(needle)
    }
}

/// A helper process a test starts and stops (a second registry, git server or dockerd).
final class Background {
    let process: Process
    let onStop: () -> Void
    /// SIGTERM first (dockerd, the registry); false: SIGKILL at once. Children of the test
    /// process inherit a blocked SIGTERM, which Go unblocks but Python does not.
    var graceful = true

    init(_ executable: String, _ arguments: [String], log: String? = nil, onStop: @escaping () -> Void = {}) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var handle = FileHandle.nullDevice
        if let log {
            FileManager.default.createFile(atPath: log, contents: nil)
            handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        }
        process.standardOutput = handle
        process.standardError = handle
        self.onStop = onStop
        try process.run()
    }

    deinit { stop() }

    /// SIGTERM, then SIGKILL after 20 s; waits for the exit.
    func stop() {
        guard process.isRunning else { return }
        if !graceful { kill(process.processIdentifier, SIGKILL) }
        process.terminate()
        let deadline = Date().addingTimeInterval(20)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        onStop()
    }

    /// Waits until `ready` holds or the process exits.
    func wait(_ what: String, timeout: TimeInterval = 60, _ ready: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if ready() { return }
            if !process.isRunning { throw RawHTTPClient.Failure(description: "\(what) exited with \(process.terminationStatus)") }
            usleep(100_000)
        }
        throw RawHTTPClient.Failure(description: "\(what) not ready in \(Int(timeout)) s")
    }

    /// A registry with the test credentials on `port`, storing under `dir`.
    static func registry(port: Int, name: String, dir: String) throws -> Background {
        let config = try String(contentsOfFile: TestEnvironment.require("SLIPWAY_TEST_REGISTRY_CONFIG"), encoding: .utf8)
            .replacingOccurrences(of: "addr: \(TestEnvironment.registry)", with: "addr: 127.0.0.1:\(port)")
            .replacingOccurrences(of: "registry-data", with: "registry-data-\(name)")
        let path = dir + "/registry-\(port).yml"
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        let server = try Background("/usr/bin/docker-registry", ["serve", path], log: dir + "/registry-\(port).log")
        try server.wait("docker-registry on \(port)") {
            (try? RawHTTPClient(port: port, timeoutSeconds: 1).request("GET", "/v2/"))?.status == 401
        }
        return server
    }

    /// The test git server's repositories served on another port.
    static func gitServer(port: Int) throws -> Background {
        let root = try TestEnvironment.require("SLIPWAY_TEST_GIT_ROOT")
        let script = Fixtures.root + "/scripts/git-http-server.py"
        let server = try Background(
            "/usr/bin/python3", [script, "--root", root, "--port", "\(port)", "--token-file", TestEnvironment.tokenFile])
        server.graceful = false
        try server.wait("git server on \(port)") { (try? RawHTTPClient(port: port, timeoutSeconds: 1).request("GET", "/public/")) != nil }
        return server
    }

    static let faultDockerHost = "unix:///run/slipway-test/fault-docker.sock"

    /// A second dockerd (own data root and socket) with the test base image, for stopping mid-build.
    static func dockerd() throws -> Background {
        let root = "/var/lib/slipway-test-docker-fault"
        let server = try Background(
            "/usr/sbin/dockerd",
            [
                "--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=vfs", "--data-root", root,
                "--exec-root", "/run/slipway-test/exec-fault", "--host", faultDockerHost, "--pidfile", "/run/slipway-test/fault-docker.pid",
            ], log: "/tmp/slipway-fault-dockerd.log")
        let docker = try TestEnvironment.require("SLIPWAY_TEST_DOCKER")
        let env = ["DOCKER_HOST": faultDockerHost, "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"]
        try server.wait("the second dockerd") { (try? run(docker, ["info"], environment: env))?.status == 0 }
        if try run(docker, ["image", "inspect", TestEnvironment.baseImage], environment: env).status != 0 {
            // Copy the base image from the shared dockerd: save | load, through a pipe, no shell.
            let save = Process(), load = Process(), pipe = Pipe()
            save.executableURL = URL(fileURLWithPath: docker)
            save.arguments = ["save", TestEnvironment.baseImage]
            save.environment = ["DOCKER_HOST": try TestEnvironment.require("SLIPWAY_TEST_DOCKER_HOST"), "PATH": env["PATH"]!]
            save.standardOutput = pipe
            load.executableURL = URL(fileURLWithPath: docker)
            load.arguments = ["load", "--quiet"]
            load.environment = env
            load.standardInput = pipe
            load.standardOutput = FileHandle.nullDevice
            try save.run()
            try load.run()
            save.waitUntilExit()
            load.waitUntilExit()
            guard save.terminationStatus == 0, load.terminationStatus == 0 else {
                throw RawHTTPClient.Failure(description: "cannot copy \(TestEnvironment.baseImage) to the second dockerd")
            }
        }
        return server
    }
}
