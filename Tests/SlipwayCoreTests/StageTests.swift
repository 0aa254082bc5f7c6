import Foundation
import Logging
import Synchronization
import Testing

@testable import SlipwayCore

/// In-memory git and docker: records what each run did and when, sleeps where asked.
final class FakeTools: PipelineTools, Sendable {
    struct Entry: Sendable {
        var run: String
        var what: String
        var at: ContinuousClock.Instant
    }

    let entries = Mutex<[Entry]>([])
    let pushDelay: Duration
    /// A build that runs a real (harmless) process, so cancel and timeout reach a process group.
    let buildCommand: [String]?

    init(pushDelay: Duration = .zero, buildCommand: [String]? = nil) {
        self.pushDelay = pushDelay
        self.buildCommand = buildCommand
    }

    func record(_ job: JobContext, _ what: String) {
        let run = String(job.scratch.split(separator: "/").last?.split(separator: "-").first ?? "")
        entries.withLock { $0.append(Entry(run: run, what: what, at: .now)) }
    }

    func times(_ run: String, _ what: String) -> [ContinuousClock.Instant] {
        entries.withLock { $0.filter { $0.run == run && $0.what == what }.map(\.at) }
    }

    func fetch(_ job: JobContext, url: String, commit: String) async throws { record(job, "fetch") }
    func checkout(_ job: JobContext, url: String, commit: String, into workspace: String) async throws { record(job, "checkout") }
    func build(
        _ job: JobContext, task: TaskDefinition, workspace: String, tags: [String], commit: String, url: String, values: [String: String]
    ) async throws -> [String] {
        record(job, "build-start")
        if let buildCommand {
            try await job.steps.run(Command(buildCommand[0], Array(buildCommand.dropFirst()), environment: ["PATH": "/usr/bin:/bin"]), step: "build")
        }
        record(job, "build-end")
        return []
    }
    func push(_ job: JobContext, tags: [String]) async throws -> [(String, String)] {
        record(job, "push-start")
        try await Task.sleep(for: pushDelay)
        record(job, "push-end")
        return tags.map { ($0, "sha256:" + String(repeating: "a", count: 64)) }
    }
    func resolve(_ job: JobContext, url: String, branch: String) async throws -> String { String(repeating: "b", count: 40) }
}

@Suite struct StageTests {
    let dir = TempDirectory()

    func config(builds: Int = 1, pushes: Int = 2, push: Bool = true) throws -> SlipwayConfig {
        try ConfigLoader.parse(
            """
            data_dir: "\(dir.path)/data"
            builds: { max_concurrent: \(builds) }
            pushes: { max_concurrent: \(pushes) }
            tasks:
              - name: web
                context: "https://example.com/o/web.git#main"
                tags: ["r.example/web:{{.Run.ID}}"]
                push: \(push)
            """, file: dir.path + "/slipway.yaml")
    }

    struct Pipeline {
        let runs: RunStore
        let builder: BuilderStage
        let pusher: PusherStage
        let control: RunControl
        let wake: CommitSignal
    }

    func pipeline(_ config: SlipwayConfig, tools: FakeTools) throws -> Pipeline {
        let runs = RunStore(database: try Database(path: dir.path + "/slipway.sqlite"), prefix: "sw")
        let logger = Logger(label: "test")
        let executor = RunExecutor(environment: { BuildEnvironment(config: config, path: "/usr/bin:/bin", dockerHost: nil) }, tools: tools, logger: logger)
        let wake = CommitSignal()
        let pushWake = CommitSignal()
        let control = RunControl()
        return Pipeline(
            runs: runs,
            builder: BuilderStage(
                runs: runs, executor: executor, config: { config }, wake: wake, pushWake: pushWake, control: control, logger: logger),
            pusher: PusherStage(runs: runs, executor: executor, config: { config }, wake: pushWake, control: control, logger: logger),
            control: control, wake: wake)
    }

    static func manual(_ commit: Character) -> NewRun {
        NewRun(
            task: "web", trigger: .manual, eventSeq: nil, repoURL: "https://example.com/o/web.git", branch: "main",
            commit: String(repeating: commit, count: 40))
    }

    func waitUntilEnded(_ runs: RunStore, _ ids: [String]) async throws -> [RunRecord] {
        for _ in 0..<500 {
            let records = try await ids.asyncMap { try await runs.run($0) }.compactMap { $0 }
            if records.count == ids.count, records.allSatisfy({ $0.status.isFinal }) { return records }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("runs \(ids) did not end")
        return []
    }

    @Test func aFinishedBuildFreesItsSlotWhileThePushRuns() async throws {
        let tools = FakeTools(pushDelay: .milliseconds(400))
        let p = try pipeline(try config(builds: 1), tools: tools)
        let first = try await p.runs.enqueue(Self.manual("1"))
        let second = try await p.runs.enqueue(Self.manual("2"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await p.builder.run() }
            group.addTask { try await p.pusher.run() }
            let ended = try await waitUntilEnded(p.runs, [first, second])
            #expect(ended.map(\.status) == [.succeeded, .succeeded])
            #expect(ended.allSatisfy { $0.images.allSatisfy { $0.digest.hasPrefix("sha256:") } })
            group.cancelAll()
        }
        // One build slot, yet run 2's build started before run 1's push ended: the stages overlap.
        let secondBuild = try #require(tools.times(second, "build-start").first)
        let firstPushEnd = try #require(tools.times(first, "push-end").first)
        #expect(secondBuild < firstPushEnd)
        // …and the appended rows show the hand-over: building → push-wait → pushing → ended.
        let phases = try await p.runs.database.read { db in
            try db.prepare("SELECT phase FROM run_states WHERE run = 1 ORDER BY seq").rows { $0.text(0) }
        }
        #expect(phases == ["queued", "building", "building", "building", "push-wait", "pushing", "ended"])
    }

    @Test func aPushInterruptedByARestartResumesWithoutARebuild() async throws {
        let tools = FakeTools()
        let p = try pipeline(try config(), tools: tools)
        let id = try await p.runs.enqueue(Self.manual("3"))
        let run = try #require(try await p.runs.claimForBuild(limit: 1).first)
        try await p.runs.apply(.built, to: run.number, facts: RunFacts(digestsJSON: #"{"r.example/web:sw1":""}"#))
        _ = try await p.runs.claimForPush(limit: 1)  // the daemon dies here, mid-push
        let recovered = try await p.runs.recoverInterrupted()
        #expect(recovered.resumed == [id] && recovered.interrupted.isEmpty && recovered.retried.isEmpty)
        #expect(try await p.runs.run(id)?.reason == waitingForPushSlot)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await p.builder.run() }
            group.addTask { try await p.pusher.run() }
            let ended = try await waitUntilEnded(p.runs, [id])
            #expect(ended.first?.status == .succeeded)
            group.cancelAll()
        }
        #expect(tools.times(id, "build-start").isEmpty, "resumed without building again")
        #expect(tools.times(id, "push-start").count == 1)
    }

    @Test func buildOnlyTasksNeverReachThePusher() async throws {
        let tools = FakeTools()
        let p = try pipeline(try config(push: false), tools: tools)
        let id = try await p.runs.enqueue(Self.manual("4"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await p.builder.run() }
            group.addTask { try await p.pusher.run() }
            let ended = try await waitUntilEnded(p.runs, [id])
            #expect(ended.first?.status == .succeeded)
            group.cancelAll()
        }
        #expect(tools.times(id, "push-start").isEmpty)
    }

    @Test func cancelStopsARunningBuildAtOnce() async throws {
        let tools = FakeTools(buildCommand: ["sleep", "300"])
        let p = try pipeline(try config(), tools: tools)
        let id = try await p.runs.enqueue(Self.manual("5"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await p.builder.run() }
            for _ in 0..<250 where tools.times(id, "build-start").isEmpty { try await Task.sleep(for: .milliseconds(20)) }
            try await Task.sleep(for: .milliseconds(100))  // let `sleep 30` start
            let ended = p.control.requestCancel(id, reason: "canceled by test")
            await ended.wait()
            let run = try #require(try await p.runs.run(id))
            #expect(run.status == .canceled && run.reason == "canceled by test" && run.step == .build)
            // TERM reached the process group: `sleep 300` never finished.
            #expect(tools.times(id, "build-end").isEmpty)
            group.cancelAll()
        }
    }

    @Test func manualRunsAreNeverSupersededButPushesAre() async throws {
        let runs = RunStore(database: try Database(path: dir.path + "/slipway.sqlite"), prefix: "sw")
        let manual = try await runs.enqueue(Self.manual("6"))
        var push = Self.manual("7")
        push.trigger = .push
        let older = try await runs.enqueue(push)
        push.commit = String(repeating: "8", count: 40)
        let newer = try await runs.enqueue(push)
        #expect(try await runs.run(manual)?.status == .queued, "a manual run is never superseded")
        #expect(try await runs.run(older)?.reason == "superseded by \(newer)")
        _ = try await runs.enqueue(Self.manual("9"))
        #expect(try await runs.run(newer)?.status == .queued, "a manual run supersedes nothing")
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for element in self { out.append(try await transform(element)) }
        return out
    }
}
