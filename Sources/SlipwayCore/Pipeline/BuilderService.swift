import Logging
import ServiceLifecycle
import Synchronization

/// Claims queued runs (oldest first, `builds.max_concurrent` at once) and executes them.
///
/// On graceful shutdown running builds are stopped and left `Running`; the next start marks them
/// `Error` ("interrupted by restart") and queues them again once (`RunStore.recoverInterrupted`).
public struct BuilderService: Service {
    let runs: RunStore
    let executor: RunExecutor
    let tasks: @Sendable () -> [TaskDefinition]
    let maxConcurrent: Int
    let wake: CommitSignal
    let control: RunControl
    let logger: Logger

    public init(
        runs: RunStore, executor: RunExecutor, tasks: @escaping @Sendable () -> [TaskDefinition], maxConcurrent: Int,
        wake: CommitSignal, control: RunControl, logger: Logger
    ) {
        self.control = control
        self.runs = runs
        self.executor = executor
        self.tasks = tasks
        self.maxConcurrent = maxConcurrent
        self.wake = wake
        self.logger = logger
    }

    public func run() async throws {
        let stopping = StopFlag()
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Bool.self) { group in
                var running = 0
                var waiting = false
                while !stopping.isSet {
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
                            await perform(run, stopping: stopping)
                            return true
                        }
                    }
                    if !waiting {
                        waiting = true
                        group.addTask {
                            await wake.wait(beyond: generation)
                            return false
                        }
                    }
                    guard let finishedRun = await group.next() else { break }
                    if finishedRun { running -= 1 } else { waiting = false }
                }
                group.cancelAll()
            }
        } onGracefulShutdown: {
            stopping.set()
            wake.bump()
        }
    }

    func perform(_ run: RunRecord, stopping: StopFlag) async {
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
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .acquiring) }
    func set() { flag.store(true, ordering: .releasing) }
}
