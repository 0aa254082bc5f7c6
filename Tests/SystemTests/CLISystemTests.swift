import Foundation
import SlipwayCore
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The operator's CLI against the real daemon over its admin socket, with real builds.
@Suite(.serialized, .enabled(if: TestEnvironment.shouldRun, TestEnvironment.skipMessage))
struct CLISystemTests {

    static func setup(_ steps: String = "", maxConcurrent: Int = 2, failing: Bool = false) throws -> (DaemonProcess, GitRepo, String) {
        let repo = try GitRepo(name: PipelineSystemTests.name("cli"))
        let dockerfile =
            failing
            ? "FROM \(TestEnvironment.baseImage)\nRUN echo 'linking' && echo 'ld: undefined reference to main' && exit 2\n"
            : PipelineSystemTests.dockerfile("ENV SLIPWAY_TEST_REPO=\(repo.name)\n" + steps)  // no cache shared between tests
        let sha = try repo.commit(["app/Dockerfile": dockerfile, "app/hello.txt": "x"])
        let daemon = try PipelineSystemTests.daemon(
            tasks: [PipelineSystemTests.task("web", repo: repo, image: repo.name)], maxConcurrent: maxConcurrent)
        daemon.keepAlive.append(repo)
        return (daemon, repo, sha)
    }

    @Test func manualRunStreamsItsLogAndExitsZero() throws {
        let (daemon, repo, sha) = try Self.setup()
        let result = try cli(daemon, ["task", "run", "web"])
        #expect(result.status == 0, "\(result.out)\n\(result.err)")
        #expect(result.out.hasPrefix("Queued a run with ID: sw1\n"))
        #expect(result.out.contains("building version \(sha.prefix(7))"), "build output streamed")
        #expect(result.out.contains("Run sw1 succeeded after"), "ends with the summary line")
        let show = try cli(daemon, ["run", "show", "sw1", "--output", "json"])
        let run = try AdminAPI.decoder.decode(AdminAPI.Run.self, from: Data(show.out.utf8))
        #expect(run.trigger == "manual" && run.status == "Succeeded" && run.commit == sha)
        #expect(
            run.images.map(\.tag) == ["\(TestEnvironment.registry)/\(repo.name):latest", "\(TestEnvironment.registry)/\(repo.name):sw1"])
        #expect(run.images.allSatisfy { $0.digest.hasPrefix("sha256:") })
        #expect(Set(run.durations.keys) == ["fetch", "checkout", "build", "push"])
    }

    @Test func failingManualRunExitsOne() throws {
        let (daemon, _, _) = try Self.setup(failing: true)
        let result = try cli(daemon, ["task", "run", "web"])
        #expect(result.status == 1, "\(result.err)")
        #expect(result.out.contains("ld: undefined reference to main"), "\(result.err)")
        #expect(result.out.contains("Run sw1 failed in step build"))
        #expect(result.out.contains("exited with 2") || result.out.contains("exit code: 2"), "\(result.out.suffix(500))")
    }

    @Test func noLogsReturnsRightAfterQueueing() throws {
        let (daemon, _, _) = try Self.setup("RUN sleep 3\n")
        let started = Date()
        let result = try cli(daemon, ["task", "run", "web", "--no-logs"])
        #expect(result.status == 0)
        #expect(result.out == "Queued a run with ID: sw1\n")
        #expect(Date().timeIntervalSince(started) < 3)
        #expect(["Queued", "Running"].contains(try daemon.runs().first?.status ?? ""))
        _ = try daemon.waitForRun("sw1")
    }

    @Test func cancelQueuedAndRunningRuns() throws {
        let (daemon, repo, _) = try Self.setup("RUN echo started && sleep 60\n", maxConcurrent: 1)
        #expect(try cli(daemon, ["task", "run", "web", "--no-logs"]).status == 0)
        try daemon.waitUntil("sw1 building") { daemon.runLog("sw1").contains("started") }
        #expect(try cli(daemon, ["task", "run", "web", "--no-logs"]).out == "Queued a run with ID: sw2\n")

        let queued = try cli(daemon, ["run", "cancel", "sw2"])
        #expect(queued.status == 0)
        #expect(queued.out.hasPrefix("Run sw2: Canceled (canceled by "))

        let started = Date()
        let running = try cli(daemon, ["run", "cancel", "sw1"])
        #expect(running.status == 0, "\(running.err)")
        #expect(running.out.hasPrefix("Run sw1: Canceled (canceled by "))
        #expect(Date().timeIntervalSince(started) < 15, "TERM, then KILL after the grace period")
        #expect(daemon.runLog("sw1").contains("Run sw1 canceled in step build: canceled by "))
        #expect(daemon.log.contains("stopping running run") && daemon.log.contains("by="), "who canceled is logged")
        try daemon.waitUntil("the build's processes gone", timeout: 15) { processesMentioning(daemon.dir + "/data/work/sw1").isEmpty }
        #expect(processesMentioning("sleep 60").isEmpty)

        let again = try cli(daemon, ["run", "cancel", "sw1"])
        #expect(again.status == 1)
        #expect(again.err.contains("already ended Canceled"))
        _ = repo
    }

    @Test func followStreamsLinesBeforeTheBuildEnds() throws {
        let (daemon, _, _) = try Self.setup("RUN echo first-$((40 + 2)) && sleep 4 && echo last-$((40 + 3))\n")
        #expect(try cli(daemon, ["task", "run", "web", "--no-logs"]).status == 0)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: DaemonProcess.binary)
        p.arguments = ["logs", "--follow", "--config", daemon.configPath]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        var seen = Data()
        var sawFirstWhileRunning = false
        let deadline = Date().addingTimeInterval(60)
        while p.isRunning && Date() < deadline {
            let chunk = out.fileHandleForReading.availableData
            seen.append(chunk)
            let text = String(decoding: seen, as: UTF8.self)
            if try text.contains("first-42") && !text.contains("last-43") && daemon.runs().first?.status == "Running" {
                sawFirstWhileRunning = true
            }
            if chunk.isEmpty { break }
        }
        p.waitUntilExit()
        seen.append(out.fileHandleForReading.readDataToEndOfFile())
        let text = String(decoding: seen, as: UTF8.self)
        #expect(sawFirstWhileRunning, "lines arrive while the build runs")
        #expect(text.contains("last-43") && text.contains("Run sw1 succeeded after"))
        #expect(p.terminationStatus == 0)
    }

    @Test func replayCreatesAReplayRun() throws {
        let (daemon, repo, sha) = try Self.setup()
        let seq = try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        _ = try daemon.waitForRun("sw1")
        let replay = try cli(daemon, ["event", "replay", "\(seq)"])
        #expect(replay.status == 0, "\(replay.err)")
        #expect(replay.out.contains("Queued a run with ID: sw2"))
        let run = try daemon.waitForRun("sw2")
        #expect(run.status == "Succeeded")
        let json = try AdminAPI.decoder.decode(
            AdminAPI.Run.self, from: Data(try cli(daemon, ["run", "show", "sw2", "--output", "json"]).out.utf8))
        #expect(json.trigger == "replay" && json.event == Int64(seq) && json.commit == sha)
    }

    @Test func listingsInBothFormats() throws {
        let (daemon, repo, sha) = try Self.setup()
        let seq = try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"], message: "first"))
        _ = try daemon.waitForRun("sw1")
        let skipped = try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"], message: "docs [skip ci]"))
        try daemon.waitUntil("trace") { try daemon.traces(event: skipped)["web"] != nil }

        let tasks = try AdminAPI.decoder.decode(
            [AdminAPI.Task].self, from: Data(try cli(daemon, ["task", "list", "--output", "json"]).out.utf8))
        #expect(tasks.count == 1)
        #expect(tasks[0].name == "web" && tasks[0].context == "\(repo.url)#main:app" && tasks[0].enabled && tasks[0].push)
        #expect(tasks[0].lastRun?.id == "sw1" && tasks[0].lastRun?.status == "Succeeded")
        let taskTable = try cli(daemon, ["task", "list"]).out.split(separator: "\n").map {
            $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        }
        #expect(taskTable[0] == ["NAME", "CONTEXT", "ENABLED", "LAST", "RUN", "STATUS", "WHEN"])
        #expect(Array(taskTable[1].prefix(5)) == ["web", "\(repo.url)#main:app", "yes", "sw1", "Succeeded"])
        #expect(taskTable[1].last == "ago")

        let runs = try AdminAPI.decoder.decode(
            [AdminAPI.Run].self, from: Data(try cli(daemon, ["run", "list", "--output", "json"]).out.utf8))
        #expect(runs.map(\.id) == ["sw1"] && runs[0].trigger == "push" && runs[0].event == Int64(seq) && runs[0].branch == "main")
        #expect(Formatting_iso(runs[0].createdAt) != nil, "ISO-8601 UTC times")
        let runTable = try cli(daemon, ["run", "list"]).out.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(runTable[0] == ["RUN", "ID", "TASK", "STATUS", "TRIGGER", "COMMIT", "BRANCH", "STARTED", "DURATION"])
        #expect(Array(runTable[1].prefix(6)) == ["sw1", "web", "Succeeded", "push", String(sha.prefix(7)), "main"])
        #expect(try cli(daemon, ["run", "list", "--status", "Failed"]).out.split(separator: "\n").count == 1, "only the header")
        #expect(try cli(daemon, ["run", "list", "--status", "nope"]).status == 1)

        let events = try AdminAPI.decoder.decode(
            [AdminAPI.Event].self, from: Data(try cli(daemon, ["event", "list", "--output", "json"]).out.utf8))
        #expect(events.map(\.seq) == [Int64(skipped), Int64(seq)], "newest first")
        #expect(
            events[1].type == "push" && events[1].after == sha && events[1].ref == "refs/heads/main"
                && events[1].signature.hasPrefix("sha256:"))
        let show = try cli(daemon, ["event", "show", "\(skipped)"])
        #expect(show.out.contains("web   no       -    head commit message contains [skip ci]"), "\(show.out)")
        let withPayload = try AdminAPI.decoder.decode(
            AdminAPI.Event.self, from: Data(try cli(daemon, ["event", "show", "\(seq)", "--payload", "--output", "json"]).out.utf8))
        #expect(withPayload.trace == [AdminAPI.TraceEntry(task: "web", matched: true, reason: "matched", runId: "sw1")])
        #expect(withPayload.payload?.contains(sha) == true)
    }

    @Test func unreachableAndForbiddenSocketsExitThree() throws {
        let (daemon, _, _) = try Self.setup()
        let missing = try run(DaemonProcess.binary, ["run", "list", "--socket", daemon.dir + "/nope.sock"])
        #expect(missing.status == 3)
        #expect(missing.err.contains("cannot connect to the slipway daemon at \(daemon.dir)/nope.sock"))
        #expect(missing.err.contains("systemctl status slipway"))

        let socket = daemon.dir + "/slipway.sock"
        var st = stat()
        #expect(stat(socket, &st) == 0 && st.st_mode & 0o777 == 0o660, "socket mode 0660")
        // A user outside the socket's group is refused by the kernel, and told why.
        let outsider = try run(
            "/usr/bin/setpriv",
            ["--reuid=65534", "--regid=65534", "--clear-groups", DaemonProcess.binary, "run", "list", "--socket", socket])
        #expect(outsider.status == 3, "\(outsider.err)")
        #expect(outsider.err.contains("permission denied") && outsider.err.contains("slipway"))
    }

    @Test func taskCreateThenPushBuildsWithoutRestart() throws {
        let (daemon, repo, sha) = try Self.setup()
        let image = repo.name + "-api"
        let create = try cli(
            daemon,
            [
                "task", "create", "api", "--context", "\(repo.url)#main:app", "-t", "\(TestEnvironment.registry)/\(image):{{.Run.ID}}",
                "--git-token-file", TestEnvironment.tokenFile, "--arg", "VERSION=created",
            ])
        #expect(create.status == 0, "\(create.err)")
        #expect(create.out.contains("Name         api"))
        #expect(FileManager.default.fileExists(atPath: daemon.dir + "/tasks.d/api.yaml"))
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        try daemon.waitUntil("two runs") { try daemon.runs().count == 2 }
        let runs = try daemon.runs()
        for run in runs { #expect(try daemon.waitForRun(run.runID).status == "Succeeded") }
        #expect(try Registry.tags(image).count == 1, "the new task built and pushed")
        #expect(daemon.log.contains("configuration reloaded"))

        // Bad context, duplicate name, a task from the main file: exit 1, nothing written.
        let bad = try cli(daemon, ["task", "create", "bad", "--context", "\(repo.url)", "-t", "r/bad:1"])
        #expect(bad.status == 1)
        #expect(bad.err.contains("has no branch") && bad.err.contains("nothing was written"))
        #expect(!FileManager.default.fileExists(atPath: daemon.dir + "/tasks.d/bad.yaml"))
        let duplicate = try cli(daemon, ["task", "create", "web", "--context", "\(repo.url)#main", "-t", "r/web:1"])
        #expect(duplicate.status == 1)
        #expect(duplicate.err.contains("duplicate task name 'web'"))
        #expect(!FileManager.default.fileExists(atPath: daemon.dir + "/tasks.d/web.yaml"))
        let mainFile = try cli(daemon, ["task", "update", "web", "--no-push"])
        #expect(mainFile.status == 1)
        #expect(mainFile.err.contains("is defined in \(daemon.configPath)"))

        #expect(try cli(daemon, ["task", "update", "api", "--no-push"]).status == 0)
        #expect(try String(contentsOfFile: daemon.dir + "/tasks.d/api.yaml", encoding: .utf8).contains("push: false"))
        #expect(try cli(daemon, ["task", "delete", "api"]).status == 0)
        #expect(try cli(daemon, ["task", "show", "api"]).status == 1)
    }
}

func Formatting_iso(_ text: String) -> Date? {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return text.hasSuffix("Z") ? f.date(from: text) : nil
}
