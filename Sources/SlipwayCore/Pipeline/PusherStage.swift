import Logging
import ServiceLifecycle

/// The pusher stage: claims runs waiting for a push slot (`pushes.max_concurrent` at once) and
/// pushes their images: after a build, after a restart that interrupted a push, or for
/// `slipway run retry-push`. It never fetches or builds.
public actor PusherStage: Service {
    let runs: RunStore
    let executor: RunExecutor
    let config: @Sendable () -> SlipwayConfig
    let wake: CommitSignal
    let control: RunControl
    let logger: Logger
    /// The builder's end: until then a shutdown still pushes what it builds within its grace.
    let upstreamFinished: StopFlag
    let retention: Retention?


    public init(
        runs: RunStore, executor: RunExecutor, config: @escaping @Sendable () -> SlipwayConfig, wake: CommitSignal, control: RunControl,
        logger: Logger, upstreamFinished: StopFlag = StopFlag(), retention: Retention? = nil
    ) {
        self.retention = retention
        self.upstreamFinished = upstreamFinished
        self.runs = runs
        self.executor = executor
        self.config = config
        self.wake = wake
        self.control = control
        self.logger = logger
    }

    public func run() async throws {
        let config = self.config
        let runs = self.runs
        let upstream = upstreamFinished
        let loop = StageLoop(
            name: "pushes", wake: wake, limit: { config().pushes.maxConcurrent }, grace: { config().builds.stopGrace }, control: control,
            logger: logger, upstreamBusy: { !upstream.isSet })
        await loop.run(
            claim: { try await runs.claimForPush(limit: $0) }, perform: { await self.perform($0) })
    }

    nonisolated func perform(_ run: RunRecord) async {
        let logger = self.logger.for(run)
        logger.notice("push started", metadata: ["kind": "\(run.state.kind.rawValue)"])
        let handle = control.register(run.runID)
        defer { control.finished(run.runID) }
        let task = config().tasks.first { $0.name == run.task }
        guard let outcome = await executor.push(run, task: task, handle: handle) else {
            logger.notice("push interrupted by shutdown; it resumes at the next start")
            return
        }
        do {
            let record = try await runs.apply(outcome.input, to: run.number, facts: outcome.facts)
            BuilderStage.report(record, logger: logger)
            if record.status == .succeeded, let retention { await retention.pruneImages(task: run.task, engine: run.builtOn) }
        } catch {
            logger.error("cannot record the push's end; it is recovered at the next start", metadata: ["error": "\(error)"])
        }
    }
}
