import Logging
import ServiceLifecycle
import Synchronization

/// The claim loop a stage runs: take up to (limit − running) runs from its queue in the
/// database, work on each in a child task, and sleep until woken (new runs, a finished one).
///
/// On graceful shutdown it stops claiming and lets the runs it holds finish for up to `grace`;
/// then it stops them (`RunControl.stopAll`): they stay held in the database and the next start
/// recovers them (`RunStore.recoverInterrupted`).
struct StageLoop: Sendable {
    let name: String
    let wake: CommitSignal
    /// Read before every claim, so a reload changes the limit for the next claim.
    let limit: @Sendable () -> Int
    let grace: @Sendable () -> Duration
    let control: RunControl
    let logger: Logger
    /// While true, a draining stage still claims work: the pusher goes on pushing what builds
    /// finish during the builder's grace, so a build that ends in time is also pushed in time.
    var upstreamBusy: @Sendable () -> Bool = { false }

    func run(
        claim: @escaping @Sendable (Int) async throws -> [RunRecord], perform: @escaping @Sendable (RunRecord) async -> Void
    ) async {
        let draining = StopFlag()
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Bool.self) { group in
                var held = 0
                var waiting = false
                while !(draining.isSet && !upstreamBusy()) && !Task.isCancelled {
                    let generation = wake.value
                    do {
                        let claimed = try await claim(limit() - held)
                        for run in claimed {
                            held += 1
                            group.addTask {
                                await perform(run)
                                return true
                            }
                        }
                    } catch {
                        logger.error("\(name): cannot claim runs; retrying", metadata: ["error": "\(error)"])
                        try? await Task.sleep(for: .seconds(1))
                        continue
                    }
                    if !waiting {
                        waiting = true
                        group.addTask {
                            await wake.wait(beyond: generation)
                            return false
                        }
                    }
                    guard let finishedRun = await group.next() else { break }
                    if finishedRun {
                        held -= 1
                    } else {
                        waiting = false
                    }
                }
                if held > 0 {
                    logger.notice(
                        "stopping: letting running \(name) finish",
                        metadata: ["running": "\(held)", "grace": "\(DurationParser.format(grace()))"])
                    let grace = grace()
                    let control = self.control
                    group.addTask {
                        do { try await Task.sleep(for: grace) } catch { return false }
                        control.stopAll()
                        return false
                    }
                    while held > 0, let finishedRun = await group.next() {
                        if finishedRun { held -= 1 }
                    }
                }
                group.cancelAll()
            }
        } onGracefulShutdown: {
            draining.set()
            wake.bump()
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
