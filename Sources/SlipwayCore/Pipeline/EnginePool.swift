import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The Docker engines builds run on, their load and health, and which one a run goes to.
///
/// Without `engines:` there is one engine `local` (the daemon's DOCKER_HOST, `builds.max_concurrent`).
/// A run goes to the least-loaded healthy engine whose labels match, preferring the engine that
/// last built the task when it has a free slot (its layer cache is warm).
public final class EnginePool: Sendable {
    struct State {
        var running: [String: Int] = [:]
        var up: [String: Bool] = [:]
        var lastError: [String: String] = [:]
        var lastSeen: [String: String] = [:]
        var lastBuilt: [String: String] = [:]
        /// Free bytes under each engine's DockerRootDir, where it can be seen from here.
        var diskFree: [String: (bytes: Int64, path: String)] = [:]
        /// Engines last seen under `retention.min_free_disk` (a change is logged once).
        var lowDisk: Set<String> = []
        /// Why an engine's free space is not measured (a change is logged once).
        var diskUnmeasured: [String: String] = [:]
    }

    private let state = Mutex(State())
    let config: @Sendable () -> SlipwayConfig
    let defaultHost: String?

    public init(config: @escaping @Sendable () -> SlipwayConfig, defaultHost: String?) {
        self.config = config
        self.defaultHost = defaultHost
    }

    /// The one engine's name without `engines:` (and of runs recorded before engines existed).
    public static let implicitEngine = "local"

    /// Whether `engines:` is configured (else the one implicit engine behaves as before engines existed).
    public var isConfigured: Bool { !config().engines.isEmpty }

    /// The configured engines (or the implicit `local`).
    public var engines: [SlipwayConfig.EngineSettings] {
        let current = config()
        if !current.engines.isEmpty { return current.engines }
        var local = SlipwayConfig.EngineSettings(name: Self.implicitEngine, host: defaultHost ?? "unix:///var/run/docker.sock")
        local.maxConcurrent = current.builds.maxConcurrent
        return [local]
    }

    public func engine(named name: String) -> SlipwayConfig.EngineSettings? { engines.first { $0.name == name } }

    /// Where a run may build now: an engine, or why it waits.
    public enum Choice: Sendable, Equatable {
        case engine(String)
        case wait(String)
    }

    /// Chooses an engine for a run of `task` (`labels` required), or says why it waits.
    public func choose(task: String, labels: [String]) -> Choice {
        let candidates = engines.filter { engine in labels.allSatisfy(engine.labels.contains) }
        guard !candidates.isEmpty else { return .wait("no engine has the labels \(labels)") }
        let minimum = config().retention.minFreeDisk
        return state.withLock { state in
            let up = candidates.filter { state.up[$0.name] ?? true }
            guard !up.isEmpty else {
                return .wait(labels.isEmpty ? "no engine is up" : "no engine with labels \(labels) is up")
            }
            // An engine under retention.min_free_disk takes no new build (it would fail half-way).
            let healthy = up.filter { !Self.isLow(state.diskFree[$0.name]?.bytes, minimum: minimum) }
            guard !healthy.isEmpty else {
                let first = up[0].name
                let (bytes, path) = state.diskFree[first] ?? (0, "")
                return .wait(
                    "waiting for disk space: engine \(first) has \(SizeParser.format(bytes)) free in \(path), under retention.min_free_disk (\(SizeParser.format(minimum)))"
                )
            }
            let free = healthy.filter { (state.running[$0.name] ?? 0) < $0.maxConcurrent }
            if let last = state.lastBuilt[task], let warm = free.first(where: { $0.name == last }) { return .engine(warm.name) }
            let least = free.min { a, b in
                Double(state.running[a.name] ?? 0) / Double(a.maxConcurrent) < Double(state.running[b.name] ?? 0) / Double(b.maxConcurrent)
            }
            return least.map { .engine($0.name) } ?? .wait("every engine\(labels.isEmpty ? "" : " with labels \(labels)") is busy")
        }
    }

    public func acquire(_ engine: String, task: String) {
        state.withLock {
            $0.running[engine, default: 0] += 1
            $0.lastBuilt[task] = engine
        }
        publish()
    }

    public func release(_ engine: String) {
        state.withLock { $0.running[engine] = max(0, ($0.running[engine] ?? 1) - 1) }
        publish()
    }

    /// Records a probe's result; returns true when the engine's state changed.
    @discardableResult
    public func report(_ engine: String, up: Bool, error: String?) -> Bool {
        let changed = state.withLock { state -> Bool in
            let was = state.up[engine] ?? true
            state.up[engine] = up
            if up {
                state.lastSeen[engine] = Timestamp.now().iso8601
            } else if let error {
                state.lastError[engine] = error
            }
            return was != up
        }
        publish()
        return changed
    }

    /// Records the free space under `engine`'s DockerRootDir (`path`); returns the change of its
    /// low-disk state (true: became low, false: recovered, nil: same).
    @discardableResult
    public func reportDisk(_ engine: String, bytes: Int64, path: String) -> Bool? {
        let minimum = config().retention.minFreeDisk
        SlipwayMetrics.diskFree(where: "engine:\(engine)", bytes: bytes)
        return state.withLock { state in
            let was = state.lowDisk.contains(engine)
            state.diskFree[engine] = (bytes, path)
            state.diskUnmeasured[engine] = nil
            let low = Self.isLow(bytes, minimum: minimum)
            if low { state.lowDisk.insert(engine) } else { state.lowDisk.remove(engine) }
            return was == low ? nil : low
        }
    }

    /// Records that `engine`'s free space could not be measured, and why: its last reading is
    /// forgotten (an unknown disk holds no build). Returns true when the reason is new.
    @discardableResult
    public func reportDiskUnmeasured(_ engine: String, reason: String) -> Bool {
        state.withLock { state in
            let was = state.diskUnmeasured[engine]
            state.diskUnmeasured[engine] = reason
            state.diskFree[engine] = nil
            state.lowDisk.remove(engine)
            return was != reason
        }
    }

    /// Why `engine`'s free space is not measured, or nil when it is (or was not tried yet).
    public func diskUnmeasured(_ engine: String) -> String? { state.withLock { $0.diskUnmeasured[engine] } }

    /// Whether `bytes` free (nil: not measured) is under `retention.min_free_disk`.
    static func isLow(_ bytes: Int64?, minimum: Int64) -> Bool { bytes.map { $0 < minimum } ?? false }

    /// Which engines are under `retention.min_free_disk` (`/healthz` says `"disk":"low"`), or nil.
    public var diskLow: String? {
        let minimum = config().retention.minFreeDisk
        let snapshot = state.withLock { $0.diskFree }
        let low = engines.filter { Self.isLow(snapshot[$0.name]?.bytes, minimum: minimum) }.map(\.name)
        return low.isEmpty ? nil : "engine \(low.joined(separator: ", ")) under retention.min_free_disk"
    }

    func publish() {
        let snapshot = state.withLock { $0 }
        for engine in engines {
            SlipwayMetrics.engine(engine.name, up: snapshot.up[engine.name] ?? true, running: snapshot.running[engine.name] ?? 0)
        }
    }

    /// `slipway engine list`.
    public func list() -> [AdminAPI.Engine] {
        let snapshot = state.withLock { $0 }
        return engines.map { engine in
            AdminAPI.Engine(
                name: engine.name, host: engine.host, state: (snapshot.up[engine.name] ?? true) ? "up" : "down",
                running: snapshot.running[engine.name] ?? 0, maxConcurrent: engine.maxConcurrent, labels: engine.labels,
                lastError: snapshot.lastError[engine.name], lastSeen: snapshot.lastSeen[engine.name],
                diskFreeBytes: snapshot.diskFree[engine.name]?.bytes, diskUnmeasured: snapshot.diskUnmeasured[engine.name])
        }
    }

    /// `env` (whose PATH is `path`) pointed at `engine`: its variables replace, except PATH,
    /// which the engine's ssh wrapper folder is put in front of.
    public static func merging(_ env: [String: String], path: String, engine: [String: String]) -> [String: String] {
        env.merging(engine) { current, mine in current == path ? "\(mine):\(current)" : mine }
    }

    /// The environment variables that point the docker CLI at `engine` (TLS certificate folder,
    /// ssh settings in the run's HOME). Writes what it needs under `scratch`; `PATH`, when set,
    /// is a prefix (apply with `merging`).
    public static func environment(for engine: SlipwayConfig.EngineSettings, scratch: String) -> [String: String] {
        var env = ["DOCKER_HOST": engine.host]
        if let tls = engine.tls {
            // The docker CLI wants ca.pem, cert.pem and key.pem in one folder: links to the operator's files.
            let folder = scratch + "/engine-tls"
            try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            for (name, target) in [("ca.pem", tls.caFile), ("cert.pem", tls.certFile), ("key.pem", tls.keyFile)] {
                try? FileManager.default.removeItem(atPath: "\(folder)/\(name)")
                try? FileManager.default.createSymbolicLink(atPath: "\(folder)/\(name)", withDestinationPath: target)
            }
            env["DOCKER_TLS_VERIFY"] = "1"
            env["DOCKER_CERT_PATH"] = folder
        }
        if let ssh = engine.ssh {
            let folder = scratch + "/.ssh"
            try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            var lines = ["Host *", "  IdentityFile \(ssh.identityFile)", "  IdentitiesOnly yes", "  BatchMode yes"]
            if let known = ssh.knownHostsFile {
                lines += ["  UserKnownHostsFile \(known)", "  StrictHostKeyChecking yes"]
            }
            FileManager.default.createFile(
                atPath: folder + "/config", contents: Data((lines.joined(separator: "\n") + "\n").utf8), attributes: [.posixPermissions: 0o600])
            // The docker CLI runs `ssh` from PATH, and ssh reads ~/.ssh from the passwd entry, not
            // $HOME: a wrapper first on PATH hands it this run's config. The path is Slipway's own
            // scratch folder (never input); it is refused if it could break the quoting.
            if !folder.contains("'"), let ssh = ProcessRunner.resolve("ssh", path: nil), !ssh.contains("'") {
                let bin = scratch + "/engine-bin"
                try? FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                // The real ssh by its absolute path: the wrapper is first on PATH.
                let wrapper = "#!/bin/sh\nexec '\(ssh)' -F '\(folder)/config' \"$@\"\n"
                FileManager.default.createFile(atPath: bin + "/ssh", contents: Data(wrapper.utf8), attributes: [.posixPermissions: 0o700])
                env["PATH"] = bin  // a prefix: put before the run's PATH
            }
        }
        return env
    }
}

extension EnginePool {
    /// What one docker command against an engine gave.
    public struct DockerResult: Sendable {
        public var ok: Bool
        public var output: [String]
        public var error: String?
    }

    /// Runs the docker CLI against `engine` from a scratch folder of its own (HOME, DOCKER_CONFIG,
    /// TLS links, ssh wrapper), removed afterwards. Maintenance commands (probes, retention) use it.
    public static func docker(
        _ args: [String], on engine: SlipwayConfig.EngineSettings, cli: String, path: String, scratch: String, timeout: Duration
    ) async -> DockerResult {
        await run({ _ in cli }, args, on: engine, path: path, scratch: scratch, timeout: timeout)
    }

    /// A command in the engine's scratch environment; `executable` gets the scratch folder.
    static func run(
        _ executable: (String) -> String, _ args: [String], on engine: SlipwayConfig.EngineSettings, path: String, scratch: String,
        timeout: Duration
    ) async -> DockerResult {
        // Under `engines/`: the probes' scratch holds no credentials (an empty DOCKER_CONFIG, links
        // to the operator's TLS files), unlike a run's.
        let folder = "\(scratch)/engines/\(engine.name)-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let env = merging(
            ["PATH": path, "HOME": folder, "LC_ALL": "C", "DOCKER_CONFIG": folder + "/docker"], path: path,
            engine: environment(for: engine, scratch: folder))
        let lines = LineCollector()
        let outcome = try? await ProcessRunner.run(Command(executable(folder), args, environment: env), deadline: .now + timeout) {
            lines.append($0)
        }
        let ok = outcome?.succeeded ?? false
        let error =
            ok ? nil : (outcome?.lastErrorLine ?? lines.lines.last ?? (outcome?.ending == .timedOut ? "no answer in \(timeout)" : "\(args.first ?? "") failed"))
        return DockerResult(ok: ok, output: lines.lines, error: error)
    }

    /// The free space under an engine's DockerRootDir, or why it is not known.
    public enum DiskReading: Sendable, Equatable {
        case free(Int64)
        case unmeasured(String)
    }

    /// Whether a path the engine reported can go into an argument as it is: absolute, and only
    /// letters, digits and `/._-` (no `:` that would add mount options, no spaces).
    static func isPlainPath(_ path: String) -> Bool {
        path.hasPrefix("/")
            && path.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || "/._-".utf8.contains($0) }
    }

    /// Free bytes under `root` on an ssh engine's machine: `df -Pk` over the same ssh connection
    /// settings the docker CLI uses (key, known hosts).
    static func sshFreeBytes(_ engine: SlipwayConfig.EngineSettings, root: String, path: String, scratch: String) async -> DiskReading {
        guard engine.ssh != nil, let target = SSHTarget(engine.host) else { return .unmeasured("not an ssh engine with ssh settings") }
        var args = target.port.map { ["-p", "\($0)"] } ?? []
        args += ["--", target.destination, "df", "-Pk", root]
        let result = await run({ "\($0)/engine-bin/ssh" }, args, on: engine, path: path, scratch: scratch, timeout: .seconds(5))
        return dfReading(result, command: "df over ssh")
    }

    /// Free bytes under `root` as a container on the engine sees them: `image`'s `df -Pk` with
    /// the DockerRootDir mounted read-only (no network). Works for any engine, also a `tcp://`
    /// one on another machine, whose filesystem Slipway cannot see.
    static func containerFreeBytes(
        _ engine: SlipwayConfig.EngineSettings, image: String, root: String, cli: String, path: String, scratch: String
    ) async -> DiskReading {
        let args = [
            "run", "--rm", "--network", "none", "--label", "slipway.probe=disk", "--entrypoint", "df",
            "--volume", "\(root):/slipway-disk:ro", image, "-Pk", "/slipway-disk",
        ]
        // Longer than the probe's 5 s: the first run may pull the image.
        let result = await docker(args, on: engine, cli: cli, path: path, scratch: scratch, timeout: .seconds(30))
        return dfReading(result, command: "df in \(image)")
    }

    /// "Filesystem 1024-blocks Used Available Capacity Mounted on", then one line: its 4th field.
    static func dfReading(_ result: DockerResult, command: String) -> DiskReading {
        guard result.ok else { return .unmeasured("\(command) failed: \(result.error ?? "no answer")") }
        guard let fields = result.output.last?.split(separator: " "), fields.count >= 4, let kilobytes = Int64(fields[3]) else {
            return .unmeasured("\(command) printed no free space: \(result.output.last ?? "nothing")")
        }
        return .free(kilobytes * 1024)
    }

    /// `ssh://[user@]host[:port]` as ssh's destination and port.
    struct SSHTarget: Equatable {
        var destination: String
        var port: Int?

        init?(_ host: String) {
            guard host.hasPrefix("ssh://") else { return nil }
            var rest = String(host.dropFirst("ssh://".count))
            if rest.hasSuffix("/") { rest.removeLast() }
            var port: Int?
            if let colon = rest.lastIndex(of: ":"), let p = Int(rest[rest.index(after: colon)...]) {
                port = p
                rest = String(rest[..<colon])
            }
            // Never an option for ssh: `--` ends them, and a destination must not start with `-`.
            guard !rest.isEmpty, !rest.hasPrefix("-"), !rest.contains(" ") else { return nil }
            destination = rest
            self.port = port
        }
    }

    /// Whether the engine's filesystem is this host's: a unix socket, or TCP to a loopback address.
    public static func isOnThisHost(_ host: String) -> Bool {
        if host.hasPrefix("unix://") { return true }
        guard host.hasPrefix("tcp://") else { return false }
        let rest = host.dropFirst("tcp://".count)
        return rest.hasPrefix("127.") || rest.hasPrefix("localhost:") || rest.hasPrefix("[::1]")
    }
}

/// Probes every engine every 10 s (`docker info`, 5 s timeout); a change is logged once. For an
/// engine on this host the probe also measures the free space under its DockerRootDir.
public struct EngineHealthService: Service {
    let pool: EnginePool
    let docker: @Sendable () -> (cli: String, path: String, scratch: String)
    let wake: CommitSignal
    let logger: Logger

    public init(pool: EnginePool, docker: @escaping @Sendable () -> (cli: String, path: String, scratch: String), wake: CommitSignal, logger: Logger) {
        self.pool = pool
        self.docker = docker
        self.wake = wake
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isCancelledOrShuttingDown {
            for engine in pool.engines { await probe(engine) }
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(10)) } } catch { break }
        }
    }

    /// One probe of `engine` (also asked for at once when a docker command against it failed).
    public func probe(_ engine: SlipwayConfig.EngineSettings) async {
        let (cli, path, scratch) = docker()
        let result = await EnginePool.docker(
            ["info", "--format", "{{.ServerVersion}}|{{.DockerRootDir}}"], on: engine, cli: cli, path: path, scratch: scratch,
            timeout: .seconds(5))
        let answer = result.output.last { $0.contains("|") }
        let up = result.ok && answer != nil
        if pool.report(engine.name, up: up, error: up ? nil : result.error) {
            if up {
                logger.notice("engine up", metadata: ["engine": "\(engine.name)"])
                wake.bump()
            } else {
                logger.warning("engine down", metadata: ["engine": "\(engine.name)", "error": "\(result.error ?? "")"])
            }
        }
        guard up, let answer else { return }
        let root = String(answer.split(separator: "|", maxSplits: 1).last ?? "")
        let free: Int64
        switch await EngineHealthService.measureDisk(engine, root: root, cli: cli, path: path, scratch: scratch) {
        case .free(let bytes):
            free = bytes
        case .unmeasured(let reason):
            if pool.reportDiskUnmeasured(engine.name, reason: reason) {
                wake.bump()  // runs held for this engine's disk may go
                logger.warning(
                    "free space of engine \(engine.name) is not measured: \(reason); retention.min_free_disk is not checked there",
                    metadata: ["engine": "\(engine.name)"])
            }
            return
        }
        if pool.diskUnmeasured(engine.name) != nil {
            logger.notice("free space of engine \(engine.name) is measured again: \(SizeParser.format(free)) in \(root)", metadata: ["engine": "\(engine.name)"])
        }
        switch pool.reportDisk(engine.name, bytes: free, path: root) {
        case true?:
            logger.warning(
                "no new build starts on engine \(engine.name): \(SizeParser.format(free)) free in \(root), under retention.min_free_disk",
                metadata: ["engine": "\(engine.name)"])
            wake.bump()  // the builder records the reason on the waiting runs
        case false?:
            logger.notice("disk space is back on engine \(engine.name): queued builds start", metadata: ["engine": "\(engine.name)"])
            wake.bump()
        case nil:
            break
        }
    }

    /// Where Slipway can see the engine's filesystem: a probe container when the engine names an
    /// image for it, this host (statvfs), or a shell over ssh. `root` comes from the engine, so it
    /// is used only when it is a plain absolute path.
    static func measureDisk(
        _ engine: SlipwayConfig.EngineSettings, root: String, cli: String, path: String, scratch: String
    ) async -> EnginePool.DiskReading {
        if engine.diskProbeImage == nil, EnginePool.isOnThisHost(engine.host), root.hasPrefix("/") {
            return DiskGuard.freeBytes(root).map { .free($0) } ?? .unmeasured("statvfs \(root) failed")
        }
        // Into a command's arguments (a `--volume` or a remote shell) only as a plain path.
        guard EnginePool.isPlainPath(root) else { return .unmeasured("the engine's DockerRootDir '\(root)' is not a plain absolute path") }
        if let image = engine.diskProbeImage {
            return await EnginePool.containerFreeBytes(engine, image: image, root: root, cli: cli, path: path, scratch: scratch)
        }
        if engine.ssh != nil {
            return await EnginePool.sshFreeBytes(engine, root: root, path: path, scratch: scratch)
        }
        return .unmeasured("the engine is on another machine: set disk_probe_image (an image with df, like busybox) to measure it")
    }
}
