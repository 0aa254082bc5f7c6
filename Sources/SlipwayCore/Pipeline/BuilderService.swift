import Logging
import ServiceLifecycle
import Synchronization

/// Claims queued runs (oldest first, `builds.max_concurrent` at once) and executes them.
///
/// On graceful shutdown it stops claiming and lets running builds finish for up to `stopGrace`;
/// those still running then are stopped and left `Running`, and the next start marks them `Error`
/// ("interrupted by restart") and queues them again once (`RunStore.recoverInterrupted`).
public final class BuilderService: Service, Sendable {
    let runs: RunStore
    let executor: RunExecutor
    let tasks: @Sendable () -> [TaskDefinition]
    let maxConcurrent: Int
    let stopGrace: Duration
    let wake: CommitSignal
    let control: RunControl
    let logger: Logger

    public init(
        runs: RunStore, executor: RunExecutor, tasks: @escaping @Sendable () -> [TaskDefinition], maxConcurrent: Int,
        stopGrace: Duration = .seconds(60), wake: CommitSignal, control: RunControl, logger: Logger
    ) {
        self.control = control
        self.stopGrace = stopGrace
        self.runs = runs
        self.executor = executor
        self.tasks = tasks
        self.maxConcurrent = maxConcurrent
        self.wake = wake
        self.logger = logger
    }

    /// How many builds run now.
    public var running: Int { counter.load(ordering: .relaxed) }
    private let counter = Atomic<Int>(0)

    public func run() async throws {
        let stopping = StopFlag()
        let draining = StopFlag()
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Bool.self) { group in
                var running = 0
                var waiting = false
                while !draining.isSet {
                    let generation = wake.value
                    var claimed: [RunRecord] = []
                    do throws(DatabaseError) {
                        claimed = try await runs.claimQueued(limit: maxConcurrent - running)
                    } catch {
                        logger.error("cannot claim queued runs; retrying", metadata: ["error": "\(error.message)"])
                        try? await Task.sleep(for: .seconds(1))
                        continue
                    }
                    for run in claimed {
                        running += 1
                        group.addTask {
                            await self.perform(run, stopping: stopping)
                            return true
                        }
                    }
                    if !waiting {
                        waiting = true
                        group.addTask {
                            await self.wake.wait(beyond: generation)
                            return false
                        }
                    }
                    guard let finishedRun = await group.next() else { break }
                    if finishedRun { running -= 1 } else { waiting = false }
                }
                if running > 0 {
                    logger.notice(
                        "stopping: letting running builds finish",
                        metadata: ["running": "\(running)", "grace": "\(DurationParser.format(stopGrace))"])
                }
                let grace = stopGrace
                let deadline = Task {
                    try? await Task.sleep(for: grace)
                    if !Task.isCancelled { stopping.set() }
                }
                await group.waitForAll()
                deadline.cancel()
            }
        } onGracefulShutdown: {
            draining.set()
            self.wake.bump()
        }
    }

    func perform(_ run: RunRecord, stopping: StopFlag) async {
        counter.add(1, ordering: .relaxed)
        defer { counter.subtract(1, ordering: .relaxed) }
        var logger = self.logger
        logger[metadataKey: "run.id"] = "\(run.runID)"
        logger[metadataKey: "task"] = "\(run.task)"
        logger[metadataKey: "commit"] = "\(run.commit)"
        logger.notice("run started", metadata: ["trigger": "\(run.trigger)", "branch": "\(run.branch)"])
        let task = tasks().first { $0.name == run.task }
        let control = self.control
        defer { control.forget(run.runID) }
        let result = await executor.execute(
            run, task: task, shutdown: { stopping.isSet }, cancelReason: { control.cancelReason(run.runID) })
        guard let result else {
            logger.notice("run interrupted by shutdown; it is retried at the next start")
            return
        }
        do throws(DatabaseError) {
            try await runs.append(result, to: run.number)
        } catch {
            logger.error("cannot record the run's end; it is recovered at the next start", metadata: ["error": "\(error.message)"])
            return
        }
        SlipwayMetrics.runFinished(status: result.status)
        var meta: Logger.Metadata = ["status": "\(result.status.rawValue)", "durations": "\(result.durationsJSON)"]
        if !result.reason.isEmpty { meta["reason"] = "\(result.reason)" }
        if !result.step.isEmpty { meta["step"] = "\(result.step)" }
        if result.status == .succeeded {
            logger.notice("run succeeded", metadata: meta)
        } else {
            logger.error("run did not succeed", metadata: meta)
        }
    }
}

/// Set once, read from any task.
public final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public var isSet: Bool { flag.load(ordering: .acquiring) }
    public func set() { flag.store(true, ordering: .releasing) }
}
