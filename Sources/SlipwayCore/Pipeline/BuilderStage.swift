import Logging
import ServiceLifecycle

/// The builder stage: claims queued runs (oldest first, `builds.max_concurrent` at once), fetches,
/// checks out and builds each, and hands the built images to the pusher through an appended
/// `push-wait` state. Its build slot is free as soon as the build ends, not when the push does.
public actor BuilderStage: Service {
    let runs: RunStore
    let executor: RunExecutor
    let config: @Sendable () -> SlipwayConfig
    let wake: CommitSignal
    let pushWake: CommitSignal
    let control: RunControl
    let logger: Logger
    /// No new build starts while data_dir is under `retention.min_free_disk`.
    public nonisolated let disk: DiskGuard
    let retention: Retention?
    private var lastCachePrune: ContinuousClock.Instant?

    /// How many builds run now.
    public private(set) var running = 0
    /// Set when the builder has stopped for good (shutdown): nothing more reaches the pusher.
    public nonisolated let finished = StopFlag()

    public init(
        runs: RunStore, executor: RunExecutor, config: @escaping @Sendable () -> SlipwayConfig, wake: CommitSignal, pushWake: CommitSignal,
        control: RunControl, logger: Logger, disk: DiskGuard = DiskGuard(), retention: Retention? = nil
    ) {
        self.disk = disk
        self.retention = retention
        self.runs = runs
        self.executor = executor
        self.config = config
        self.wake = wake
        self.pushWake = pushWake
        self.control = control
        self.logger = logger
    }

    public func run() async throws {
        let config = self.config
        let runs = self.runs
        let disk = self.disk
        let loop = StageLoop(
            name: "builds", wake: wake, limit: { config().builds.maxConcurrent }, grace: { config().builds.stopGrace }, control: control,
            logger: logger)
        await loop.run(
            claim: { limit in
                // Under min_free_disk nothing starts; the queued runs say which disk (the guard wakes us).
                if let low = disk.low {
                    try await runs.holdQueued(reason: low)
                    return []
                }
                return try await runs.claimForBuild(limit: limit)
            }, perform: { await self.perform($0) }, running: { await self.set(running: $0) })
        finished.set()
        pushWake.bump()
    }

    func set(running: Int) { self.running = running }

    /// The build cache is pruned after builds, at most once every five minutes.
    func shouldPruneCache() -> Bool {
        if let last = lastCachePrune, ContinuousClock.now - last < .seconds(300) { return false }
        lastCachePrune = .now
        return true
    }

    nonisolated func perform(_ run: RunRecord) async {
        let logger = self.logger.for(run)
        logger.notice("build started", metadata: ["trigger": "\(run.trigger.rawValue)", "branch": "\(run.branch)"])
        let handle = control.register(run.runID)
        defer { control.finished(run.runID) }
        let task = config().tasks.first { $0.name == run.task }
        let runs = self.runs
        let outcome = await executor.build(run, task: task, handle: handle) { step in
            _ = try? await runs.apply(.enterStep(step), to: run.number)
        }
        guard let outcome else {
            logger.notice("build interrupted by shutdown; it is built again at the next start")
            return
        }
        do {
            let record = try await runs.apply(outcome.input, to: run.number, facts: outcome.facts)
            if record.state.phase == .pushWait { pushWake.bump() }
            Self.report(record, logger: logger)
        } catch {
            logger.error("cannot record the build's end; it is recovered at the next start", metadata: ["error": "\(error)"])
        }
        if await shouldPruneCache(), let retention { await retention.pruneBuildCache() }
    }

    /// Logs a run's end (or hand-over) and counts it.
    static func report(_ record: RunRecord, logger: Logger) {
        guard record.state.phase == .ended else {
            logger.info("build finished; waiting for a push slot")
            return
        }
        SlipwayMetrics.runFinished(status: record.status)
        var meta: Logger.Metadata = ["status": "\(record.status.rawValue)", "durations": "\(record.durationsJSON)"]
        if !record.reason.isEmpty { meta["reason"] = "\(record.reason)" }
        if record.step != .none { meta["step"] = "\(record.step.rawValue)" }
        if record.status == .succeeded {
            logger.notice("run succeeded", metadata: meta)
        } else {
            logger.error("run did not succeed", metadata: meta)
        }
    }
}
