import Foundation
import Logging
import Synchronization

/// What every run needs from the daemon's configuration.
public struct BuildEnvironment: Sendable {
    public var dataDirectory: String
    public var settings: SlipwayConfig.BuildSettings
    public var registries: [SlipwayConfig.RegistryCredential]
    /// The daemon's PATH and DOCKER_HOST: the only variables children inherit.
    public var path: String
    public var dockerHost: String?

    public init(config: SlipwayConfig, environment: [String: String] = ProcessInfo.processInfo.environment) {
        dataDirectory = config.dataDirectory
        settings = config.builds
        registries = config.registries
        path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        dockerHost = environment["DOCKER_HOST"]
    }
}

/// Runs one build: mirror fetch, exact-commit checkout, `docker build`, push; returns the final state.
public struct RunExecutor: Sendable {
    let environment: BuildEnvironment
    let mirrors: KeyedLock
    let logger: Logger

    public init(environment: BuildEnvironment, mirrors: KeyedLock, logger: Logger) {
        self.environment = environment
        self.mirrors = mirrors
        self.logger = logger
    }

    var runsDirectory: String { environment.dataDirectory + "/runs" }

    public static func logPath(dataDirectory: String, runID: String) -> String { "\(dataDirectory)/runs/\(runID).log" }

    /// Removes every run's scratch (askpass, DOCKER_CONFIG with credentials) and workspace.
    /// Called at start, when no run is active: a crash must not leave credentials on disk.
    public static func removeLeftovers(dataDirectory: String) -> [String] {
        var removed: [String] = []
        for dir in ["tmp", "work"] {
            let parent = "\(dataDirectory)/\(dir)"
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [] {
                if (try? FileManager.default.removeItem(atPath: "\(parent)/\(entry)")) != nil { removed.append("\(dir)/\(entry)") }
            }
        }
        return removed
    }

    /// The commit `branch` of `task`'s repository points at now (for a manual run).
    public func resolveBranch(task: TaskDefinition, branch: String) async throws -> String {
        let scratch = "\(environment.dataDirectory)/tmp/resolve-\(UInt64.random(in: 0...UInt64.max))"
        try FileText.makeDirectories(scratch, mode: 0o700)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var masker = SecretMasker()
        if let file = task.gitTokenFile { masker.add(String(decoding: try FileText.readSecret(file), as: UTF8.self)) }
        let log = try RunLog(path: scratch + "/resolve.log", masker: masker, logger: logger)
        let steps = StepRunner(log: log, deadline: .now + .seconds(60), timeoutText: "60s", stopRequested: { false })
        let git = GitSteps(steps: steps, environment: environment, scratch: scratch, tokenFile: task.gitTokenFile, mirrors: mirrors)
        do {
            return try await git.resolve(url: task.context.url, branch: branch)
        } catch let failure as StepFailure {
            throw StepFailure(failure.status, step: failure.step, masker.mask(failure.reason))
        }
    }

    /// Executes `run`; returns nil when the daemon is shutting down (the run is recovered at the next start).
    /// `cancelReason` reports an operator's cancel: the run's processes are stopped and it ends `Canceled`.
    public func execute(
        _ run: RunRecord, task: TaskDefinition?, shutdown: @escaping @Sendable () -> Bool,
        cancelReason: @escaping @Sendable () -> String? = { nil }
    ) async -> RunStateChange? {
        let stopRequested: @Sendable () -> Bool = { shutdown() || cancelReason() != nil }
        var logger = self.logger
        logger[metadataKey: "run.id"] = "\(run.runID)"
        logger[metadataKey: "task"] = "\(run.task)"
        logger[metadataKey: "commit"] = "\(run.commit)"
        guard let task else {
            return RunStateChange(.error, reason: "task '\(run.task)' is no longer configured", step: "prepare")
        }
        var masker = SecretMasker()
        let secrets: RunSecrets
        do {
            secrets = try RunSecrets(task: task, registries: environment.registries)
            secrets.values.forEach { masker.add($0) }
        } catch {
            return RunStateChange(.error, reason: "cannot read secret file \(error)", step: "prepare")
        }
        let log: RunLog
        let scratch = "\(environment.dataDirectory)/tmp/\(run.runID)"
        do {
            try FileText.makeDirectories(runsDirectory)
            try FileText.makeDirectories(scratch, mode: 0o700)
            log = try RunLog(path: Self.logPath(dataDirectory: environment.dataDirectory, runID: run.runID), masker: masker, logger: logger)
        } catch {
            return RunStateChange(.error, reason: "cannot prepare the run: \(error)", step: "prepare")
        }
        let workspace = "\(environment.dataDirectory)/work/\(run.runID)"
        defer {
            try? FileManager.default.removeItem(atPath: scratch)
            try? FileManager.default.removeItem(atPath: workspace)
        }
        let timeout = task.timeout ?? environment.settings.defaultTimeout
        let steps = StepRunner(
            log: log, deadline: .now + timeout, timeoutText: DurationParser.format(timeout), stopRequested: stopRequested)
        log.line(
            "Run \(run.runID): task \(task.name), commit \(run.commit) (branch \(run.branch)), trigger \(run.trigger), attempt \(run.attempt)"
        )
        if run.isPushRetry {
            return await retryPush(
                run, steps: steps, log: log, scratch: scratch, secrets: secrets, shutdown: shutdown, cancelReason: cancelReason)
        }
        var durations: [(String, Double)] = []
        var digests: [(String, String)] = []
        var tags: [String] = []
        do {
            let values = templateValues(run: run, task: task)
            tags = try task.tags.map { text in
                let tag = try Template(text).render(values)
                do { _ = try DockerReference(tag) } catch let invalid as DockerReference.Invalid {
                    throw StepFailure(.failed, step: "prepare", invalid.description)
                }
                return tag
            }
            let git = GitSteps(steps: steps, environment: environment, scratch: scratch, tokenFile: task.gitTokenFile, mirrors: mirrors)
            defer { for (step, seconds) in durations { SlipwayMetrics.step(step, seconds: seconds) } }
            durations.append(("fetch", try await timed { try await git.fetch(url: run.repoURL, commit: run.commit) }))
            durations.append(
                ("checkout", try await timed { try await git.checkout(url: run.repoURL, commit: run.commit, into: workspace) }))
            let docker = DockerSteps(steps: steps, environment: environment, scratch: scratch, secrets: secrets)
            try docker.writeConfig()
            durations.append(
                (
                    "build",
                    try await timed {
                        try await docker.build(
                            task: task, workspace: workspace, tags: tags, commit: run.commit, url: run.repoURL, values: values)
                    }
                ))
            if task.push {
                durations.append(("push", try await timed { digests = try await docker.push(tags) }))
            } else {
                log.line("push: false: built only, nothing pushed")
            }
        } catch let failure as StepFailure {
            var failure = failure
            if failure.status == .canceled {
                if shutdown() { return nil }
                failure.reason = cancelReason() ?? "canceled"
            }
            log.line("Run \(run.runID) \(failure.status.rawValue.lowercased()) in step \(failure.step): \(failure.reason)")
            var images = "{}"
            if failure.step == "push" {
                // The images are built and kept locally: record which tags still need pushing (digest "").
                images = Self.imagesJSON(tags: tags, pushed: digests)
                log.line("The images are kept locally; `slipway run retry-push \(run.runID)` pushes them once the registry is back.")
            }
            return RunStateChange(
                failure.status, reason: log.mask(failure.reason), step: failure.step, exitCode: failure.exitCode,
                durationsJSON: Self.json(durations), digestsJSON: images)
        } catch {
            log.line("Run \(run.runID) error: \(error)")
            return RunStateChange(.error, reason: log.mask("\(error)"), durationsJSON: Self.json(durations))
        }
        let total = durations.reduce(0) { $0 + $1.1 }
        for (tag, digest) in digests { log.line("pushed \(tag)@\(digest)") }
        log.line("Run \(run.runID) succeeded after \(String(format: "%.1f", total))s")
        return RunStateChange(.succeeded, durationsJSON: Self.json(durations), digestsJSON: Self.imagesJSON(tags: tags, pushed: digests))
    }

    /// Pushes the images a run built but could not push (`slipway run retry-push`): no fetch, no
    /// build. Returns nil when the daemon is shutting down (the run is recovered at the next start).
    func retryPush(
        _ run: RunRecord, steps: StepRunner, log: RunLog, scratch: String, secrets: RunSecrets,
        shutdown: @escaping @Sendable () -> Bool, cancelReason: @escaping @Sendable () -> String?
    ) async -> RunStateChange? {
        let images = run.images
        let pending = images.filter { $0.digest.isEmpty }.map(\.tag)
        log.line("Run \(run.runID): retrying the push of \(pending.joined(separator: ", "))")
        var durations = run.durations
        var pushed = images.filter { !$0.digest.isEmpty }.map { ($0.tag, $0.digest) }
        let docker = DockerSteps(steps: steps, environment: environment, scratch: scratch, secrets: secrets)
        let tags = images.map(\.tag)
        func ordered() -> String {
            Self.json(["fetch", "checkout", "build", "push"].compactMap { step in durations[step].map { (step, $0) } })
        }
        do {
            try docker.writeConfig()
            durations["push"] = try await timed { pushed += try await docker.push(pending) }
        } catch var failure as StepFailure {
            if failure.status == .canceled {
                if shutdown() { return nil }
                failure.reason = cancelReason() ?? "canceled"
            }
            log.line("Run \(run.runID) \(failure.status.rawValue.lowercased()) in step push: \(failure.reason)")
            return RunStateChange(
                failure.status, reason: log.mask(failure.reason), step: "push", exitCode: failure.exitCode, durationsJSON: ordered(),
                digestsJSON: Self.imagesJSON(tags: tags, pushed: pushed))
        } catch {
            log.line("Run \(run.runID) error: \(error)")
            return RunStateChange(.error, reason: log.mask("\(error)"), step: "push", digestsJSON: run.digestsJSON)
        }
        for (tag, digest) in pushed { log.line("pushed \(tag)@\(digest)") }
        log.line("Run \(run.runID) succeeded (push retried)")
        return RunStateChange(.succeeded, durationsJSON: ordered(), digestsJSON: Self.imagesJSON(tags: tags, pushed: pushed))
    }

    /// `{"tag": "sha256:…"}` for every tag; a tag not pushed (yet) has digest "".
    static func imagesJSON(tags: [String], pushed: [(String, String)]) -> String {
        let digests = Dictionary(pushed, uniquingKeysWith: { _, last in last })
        return "{" + tags.map { "\(JSONText.quote($0)):\(JSONText.quote(digests[$0] ?? ""))" }.joined(separator: ",") + "}"
    }

    func templateValues(run: RunRecord, task: TaskDefinition) -> [String: String] {
        let date = Timestamp.now().iso8601  // 2026-11-26T18:15:00.123Z → 20261126-181500
        let digits = date.filter(\.isNumber)
        return [
            ".Run.ID": run.runID, ".Commit": run.commit, ".Commit.Short": String(run.commit.prefix(7)), ".Branch": run.branch,
            ".Tag": "", ".Task": task.name, ".Date": "\(digits.prefix(8))-\(digits.dropFirst(8).prefix(6))",
        ]
    }

    func timed(_ body: () async throws -> Void) async throws -> Double {
        let start = ContinuousClock.now
        try await body()
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    static func json(_ durations: [(String, Double)]) -> String {
        "{" + durations.map { "\(JSONText.quote($0.0)):\(String(format: "%.3f", $0.1))" }.joined(separator: ",") + "}"
    }
}

/// The secret values one run may use, read from their files at the start of the run.
struct RunSecrets: Sendable {
    var gitToken: String?
    var registryPasswords: [String: String] = [:]
    var buildArgs: [(name: String, value: String, file: String)] = []

    init(task: TaskDefinition, registries: [SlipwayConfig.RegistryCredential]) throws {
        if let file = task.gitTokenFile { gitToken = String(decoding: try FileText.readSecret(file), as: UTF8.self) }
        for registry in registries {
            registryPasswords[registry.server] = String(decoding: try FileText.readSecret(registry.passwordFile), as: UTF8.self)
        }
        for arg in task.secretBuildArgs {
            buildArgs.append((arg.key, String(decoding: try FileText.readSecret(arg.value), as: UTF8.self), arg.value))
        }
    }

    var values: [String] { [gitToken].compactMap { $0 } + Array(registryPasswords.values) + buildArgs.map(\.value) }
}

/// Runs one command of a step against the run's deadline, logging it and its output.
struct StepRunner: Sendable {
    let log: RunLog
    let deadline: ContinuousClock.Instant
    let timeoutText: String
    let stopRequested: @Sendable () -> Bool

    /// Runs `command`; throws a `StepFailure` naming `step` unless it exits 0. Returns its output lines.
    @discardableResult
    func run(_ command: Command, step: String, quiet: Bool = false, failure: RunStatus = .failed) async throws -> [String] {
        if stopRequested() { throw StepFailure(.canceled, step: step, "canceled") }
        if !quiet { log.command(command) }
        let lines = Mutex<[String]>([])
        let log = self.log
        let outcome: CommandOutcome
        do {
            outcome = try await ProcessRunner.run(command, deadline: deadline, stopRequested: stopRequested) { line in
                if !quiet { log.line(line) }
                lines.withLock { $0.append(line) }
            }
        } catch {
            throw StepFailure(.error, step: step, "\(error)")
        }
        let output = lines.withLock { $0 }
        switch outcome.ending {
        case .exited(0): return output
        case .timedOut: throw StepFailure(.timeout, step: step, "timed out after \(timeoutText)")
        case .canceled: throw StepFailure(.canceled, step: step, "canceled")
        case .exited(let code):
            let last =
                outcome.lastErrorLine?.trimmingCharacters(in: .whitespaces) ?? output.last {
                    !$0.trimmingCharacters(in: .whitespaces).isEmpty
                }
                ?? "no output"
            throw StepFailure(
                failure, step: step, "\(command.display) exited with \(code): \(last)", exitCode: Int(code),
                output: Array(output.suffix(50)))
        case .signaled(let signal):
            throw StepFailure(failure, step: step, "\(command.display) was killed by signal \(signal)")
        }
    }
}
