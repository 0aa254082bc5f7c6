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
    /// Where builds run; nil in unit tests (one implicit engine `local`).
    let engines: EnginePool?

    /// Set when the builder has stopped for good (shutdown): nothing more reaches the pusher.
    public nonisolated let finished = StopFlag()

    public init(
        runs: RunStore, executor: RunExecutor, config: @escaping @Sendable () -> SlipwayConfig, wake: CommitSignal, pushWake: CommitSignal,
        control: RunControl, logger: Logger, disk: DiskGuard = DiskGuard(), retention: Retention? = nil, engines: EnginePool? = nil
    ) {
        self.engines = engines
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
                guard let engines = self.engines else { return try await runs.claimForBuild(limit: limit) }
                return try await Self.place(runs: runs, engines: engines, config: config(), limit: limit)
            }, perform: { await self.perform($0) })
        finished.set()
        pushWake.bump()
    }

    /// Places the oldest queued runs on engines (labels, health, load, warm cache) and claims them;
    /// a run no engine can take stays queued and says why.
    static func place(runs: RunStore, engines: EnginePool, config: SlipwayConfig, limit: Int) async throws -> [RunRecord] {
        guard limit > 0 else { return [] }
        var placements: [(run: Int64, engine: String)] = []
        for run in try await runs.queued(limit: 200) where placements.count < limit {
            let labels = config.tasks.first { $0.name == run.task }?.engineLabels ?? []
            switch engines.choose(task: run.task, labels: labels) {
            case .engine(let name):
                engines.acquire(name, task: run.task)
                placements.append((run.number, name))
            case .wait(let why):
                if !why.contains("busy"), run.reason != why { _ = try? await runs.apply(.hold(reason: why), to: run.number) }
            }
        }
        let claimed = try await runs.claim(placements)
        // Placed but claimed elsewhere meanwhile (canceled): give the slot back.
        for placement in placements where !claimed.contains(where: { $0.number == placement.run }) { engines.release(placement.engine) }
        return claimed
    }

    /// A build that failed because its engine stopped answering is the engine's fault: the engine
    /// is marked down and the run is queued again once, as a new run, for another engine.
    nonisolated func failOver(_ record: RunRecord, logger: Logger) async {
        guard let engines, record.status == .error, record.reason.contains("engine \(record.engine) became unreachable") else { return }
        engines.report(record.engine, up: false, error: record.reason)
        guard record.attempt == 1 else { return }
        var retry = NewRun(
            task: record.task, trigger: record.trigger, eventSeq: record.eventSeq, repoURL: record.repoURL, branch: record.branch,
            commit: record.commit, attempt: 2, requestedBy: record.requestedBy, tag: record.tag, pullRequest: record.pullRequest)
        retry.fromFork = record.fromFork
        do {
            let id = try await runs.enqueue(retry)
            let dataDirectory = config().dataDirectory
            RunExecutor.note(
                "Run \(record.runID): engine \(record.engine) became unreachable; queued again as \(id) for another engine", runID: record.runID,
                dataDirectory: dataDirectory, logger: logger)
            RunExecutor.note(
                "Run \(id): retry of \(record.runID), whose engine \(record.engine) became unreachable", runID: id, dataDirectory: dataDirectory,
                logger: logger)
            logger.warning("engine became unreachable: run queued again", metadata: ["engine": "\(record.engine)", "retry": "\(id)"])
            wake.bump()
        } catch {
            logger.error("cannot queue the retry of a run whose engine failed", metadata: ["error": "\(error)"])
        }
    }

    nonisolated func perform(_ run: RunRecord) async {
        let logger = self.logger.for(run)
        logger.notice("build started", metadata: ["trigger": "\(run.trigger.rawValue)", "branch": "\(run.branch)"])
        let handle = control.register(run.runID)
        defer { control.finished(run.runID) }
        defer { if let engines, !run.engine.isEmpty { engines.release(run.engine) } }
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
            await failOver(record, logger: logger)
        } catch {
            logger.error("cannot record the build's end; it is recovered at the next start", metadata: ["error": "\(error)"])
        }
        retention?.buildFinished(engine: run.builtOn)
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
