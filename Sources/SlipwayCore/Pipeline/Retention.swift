import Foundation
import Logging
import Synchronization

/// What `retention:` removes: old runs' local images, the build cache beyond its size, old run logs.
public struct Retention: Sendable {
    let runs: RunStore
    let environment: @Sendable () -> BuildEnvironment
    let engines: EnginePool?
    let logger: Logger
    /// Engines that built since their cache was last pruned, and when each was last pruned.
    private let cache = CachePrunes()

    public init(runs: RunStore, environment: @escaping @Sendable () -> BuildEnvironment, engines: EnginePool? = nil, logger: Logger) {
        self.runs = runs
        self.environment = environment
        self.engines = engines
        self.logger = logger
    }

    /// The engine a run used (`RunRecord.builtOn`; the implicit `local` without a pool).
    func engine(_ name: String, _ env: BuildEnvironment) -> SlipwayConfig.EngineSettings {
        if let engines, let engine = engines.engine(named: name) ?? engines.engines.first { return engine }
        return SlipwayConfig.EngineSettings(name: EnginePool.implicitEngine, host: env.dockerHost ?? "unix:///var/run/docker.sock")
    }

    func docker(_ args: [String], on engine: SlipwayConfig.EngineSettings, _ env: BuildEnvironment) async -> EnginePool.DockerResult {
        await EnginePool.docker(args, on: engine, cli: env.settings.docker, path: env.path, scratch: env.dataDirectory + "/tmp", timeout: .seconds(120))
    }

    /// After a push of `task` on `engine`: removes from that engine the tags of the task's runs
    /// there older than the newest `keep_images` (whatever their status). A tag a kept run of any
    /// task uses stays; so do the images of a run whose push failed less than a day ago
    /// (`retry-push` needs them).
    public func pruneImages(task: String, engine engineName: String) async {
        let env = environment()
        let keep = env.retention.keepImages
        let engine = engine(engineName, env)
        guard let all = try? await runs.list(top: 10_000) else { return }
        // Newest first, like `all`.
        let history = all.filter { $0.task == task && $0.builtOn == engine.name }
        guard history.count > keep else { return }
        // Only a tag no other run has is removed: a shared tag (`latest`) moves from run to run and
        // is never taken from under a run that may still have to push it.
        var users: [String: Set<Int64>] = [:]
        var protected = Set<String>()
        for run in all {
            for image in run.images { users[image.tag, default: []].insert(run.number) }
            // A run still on its way (building, waiting to push, pushing) keeps every tag it has.
            if !run.status.isFinal { protected.formUnion(run.images.map(\.tag)) }
        }
        for run in history.prefix(keep) { protected.formUnion(run.images.map(\.tag)) }
        let dayAgo = Timestamp(milliseconds: Timestamp.now().milliseconds - 86_400_000).iso8601
        var remove: [String] = []
        for run in history.dropFirst(keep) where run.status.isFinal {
            let retryable = run.status != .succeeded && run.step == .push && run.images.contains { $0.digest.isEmpty }
            if retryable && run.createdAt > dayAgo { continue }
            for image in run.images
            where !protected.contains(image.tag) && !remove.contains(image.tag) && users[image.tag] == [run.number] {
                remove.append(image.tag)
            }
        }
        var removed: [String] = []
        for tag in remove {
            let result = await docker(["rmi", tag], on: engine, env)
            if result.ok { removed.append(tag) }
        }
        if !removed.isEmpty {
            SlipwayMetrics.retention("images", removed: removed.count, bytes: 0)
            logger.notice(
                "retention: removed old runs' images",
                metadata: ["task": "\(task)", "engine": "\(engine.name)", "images": "\(removed.joined(separator: ","))", "keep": "\(keep)"])
        }
    }

    /// A build ended on `engine`: its cache is pruned at the retention service's next turn (not
    /// on the builder's time: a prune waits on BuildKit and must not hold a build slot).
    public func buildFinished(engine: String) {
        _ = cache.state.withLock { $0.due.insert(engine) }
    }

    /// Prunes the build cache of each engine that built since, at most once every five minutes per engine.
    public func pruneDueBuildCaches(now: ContinuousClock.Instant = .now) async {
        let ready = cache.state.withLock { state -> [String] in
            let ready = state.due.filter { state.last[$0].map { now - $0 >= .seconds(300) } ?? true }.sorted()
            for engine in ready {
                state.due.remove(engine)
                state.last[engine] = now
            }
            return ready
        }
        for engine in ready { await pruneBuildCache(engine: engine) }
    }

    /// Prunes `engine`'s build cache down to `retention.build_cache` (BuildKit), or its dangling
    /// images (legacy builder).
    public func pruneBuildCache(engine engineName: String) async {
        let env = environment()
        let engine = engine(engineName, env)
        let args =
            env.settings.buildkit
            ? ["builder", "prune", "--force", "--keep-storage", "\(env.retention.buildCache)"] : ["image", "prune", "--force"]
        let result = await docker(args, on: engine, env)
        let reclaimed = result.output.last { $0.contains("reclaimed") } ?? ""
        guard result.ok else {
            logger.warning("retention: build cache prune failed", metadata: ["engine": "\(engine.name)", "error": "\(result.error ?? "")"])
            return
        }
        SlipwayMetrics.retention("build_cache", removed: 1, bytes: Self.bytes(in: reclaimed))
        logger.info(
            "retention: build cache pruned",
            metadata: ["engine": "\(engine.name)", "kept": "\(SizeParser.format(env.retention.buildCache))", "result": "\(reclaimed)"])
    }

    /// `Total reclaimed space: 1.2GB` → bytes.
    static func bytes(in line: String) -> Int64 {
        guard let colon = line.lastIndex(of: ":") else { return 0 }
        return (try? SizeParser.parse(String(line[line.index(after: colon)...]).replacingOccurrences(of: " ", with: ""))) ?? 0
    }

    /// Deletes the logs of finished runs older than `retention.run_logs`, leaving a tombstone so
    /// `slipway logs` can say what happened. Returns the run IDs whose logs were removed.
    @discardableResult
    public func pruneRunLogs(now: Date = Date()) async -> [String] {
        let env = environment()
        let folder = env.dataDirectory + "/runs"
        let limit = Double(env.retention.runLogs.components.seconds)
        var removed: [String] = []
        var bytes: Int64 = 0
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where name.hasSuffix(".log") {
            let path = "\(folder)/\(name)"
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
                let modified = attributes[.modificationDate] as? Date, now.timeIntervalSince(modified) > limit
            else { continue }
            let runID = String(name.dropLast(4))
            guard let run = try? await runs.run(runID), run.status.isFinal else { continue }
            let tombstone = Self.tombstone(folder: folder, runID: runID)
            FileManager.default.createFile(
                atPath: tombstone, contents: Data("removed \(Timestamp.now().iso8601) (retention.run_logs \(DurationParser.format(env.retention.runLogs)))\n".utf8))
            if (try? FileManager.default.removeItem(atPath: path)) != nil {
                removed.append(runID)
                bytes += (attributes[.size] as? Int64) ?? Int64((attributes[.size] as? Int) ?? 0)
            }
        }
        if !removed.isEmpty {
            SlipwayMetrics.retention("run_logs", removed: removed.count, bytes: bytes)
            logger.notice(
                "retention: old run logs removed",
                metadata: ["runs": "\(removed.count)", "bytes": "\(bytes)", "older_than": "\(DurationParser.format(env.retention.runLogs))"])
        }
        return removed
    }

    public static func tombstone(folder: String, runID: String) -> String { "\(folder)/\(runID).log.removed" }
}

/// Which engines' build caches are due for a prune, and when each was last pruned.
final class CachePrunes: Sendable {
    let state = Mutex<(due: Set<String>, last: [String: ContinuousClock.Instant])>(([], [:]))
}

/// Output lines of a command, collected from its reader tasks.
final class LineCollector: Sendable {
    private let storage = Mutex<[String]>([])
    func append(_ line: String) { storage.withLock { $0.append(line) } }
    var lines: [String] { storage.withLock { $0 } }
}
