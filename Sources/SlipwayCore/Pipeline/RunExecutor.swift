import Foundation
import Logging
import Synchronization

/// What every run needs from the daemon's configuration.
public struct BuildEnvironment: Sendable {
    public var dataDirectory: String
    public var settings: SlipwayConfig.BuildSettings
    public var registries: [SlipwayConfig.RegistryCredential]
    public var retention: SlipwayConfig.RetentionSettings
    /// The engine this run's docker commands go to, and the variables that point there.
    public var engine: String = ""
    public var engineEnvironment: [String: String] = [:]
    /// The daemon's PATH and DOCKER_HOST: the only variables children inherit.
    public var path: String
    public var dockerHost: String?

    public init(config: SlipwayConfig, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.init(config: config, path: environment["PATH"], dockerHost: environment["DOCKER_HOST"])
    }

    public init(config: SlipwayConfig, path: String?, dockerHost: String?) {
        dataDirectory = config.dataDirectory
        settings = config.builds
        registries = config.registries
        retention = config.retention
        self.path = path ?? "/usr/local/bin:/usr/bin:/bin"
        self.dockerHost = dockerHost
    }
}

/// Does one stage's work for one run: the build (fetch, exact-commit checkout, `docker build`)
/// or the push of the images a build left. Returns what the stage reports to the state machine,
/// or nil when the daemon is shutting down (the run is recovered at the next start).
public struct RunExecutor: Sendable {
    /// The settings now: read when a run is claimed, so a reload applies to the next run.
    let environment: @Sendable () -> BuildEnvironment
    let tools: any PipelineTools
    let mirrors: KeyedLock
    let logger: Logger
    /// Where the base images of successful builds are recorded for the base-image trigger.
    let baseImages: BaseImageStore?
    /// The GitHub token (PAT or app installation token) fetches use when a task has no git_token_file.
    let githubToken: @Sendable () async -> String?
    let engines: EnginePool?

    public typealias Outcome = (input: RunStateMachine.Input, facts: RunFacts)

    public init(
        environment: @escaping @Sendable () -> BuildEnvironment, tools: any PipelineTools = GitDockerTools(), mirrors: KeyedLock = KeyedLock(),
        logger: Logger, baseImages: BaseImageStore? = nil, githubToken: @escaping @Sendable () async -> String? = { nil },
        engines: EnginePool? = nil
    ) {
        self.engines = engines
        self.baseImages = baseImages
        self.githubToken = githubToken
        self.environment = environment
        self.tools = tools
        self.mirrors = mirrors
        self.logger = logger
    }

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

    /// Appends one line to a run's log outside any stage (recovery notes).
    public static func note(_ text: String, runID: String, dataDirectory: String, logger: Logger) {
        try? FileText.makeDirectories(dataDirectory + "/runs")
        (try? RunLog(path: logPath(dataDirectory: dataDirectory, runID: runID), masker: SecretMasker(), logger: logger))?.line(text)
    }

    /// The commit `branch` of `task`'s repository points at now (for a manual run).
    public func resolveBranch(task: TaskDefinition, branch: String) async throws -> String {
        let environment = self.environment()
        let scratch = "\(environment.dataDirectory)/tmp/resolve-\(UInt64.random(in: 0...UInt64.max))"
        try FileText.makeDirectories(scratch, mode: 0o700)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var masker = SecretMasker()
        var tokenFile = task.gitTokenFile
        if let file = tokenFile {
            masker.add(String(decoding: try FileText.readSecret(file), as: UTF8.self))
        } else if let token = await githubToken() {
            masker.add(token)
            tokenFile = scratch + "/github-token"
            FileManager.default.createFile(atPath: tokenFile!, contents: Data(token.utf8), attributes: [.posixPermissions: 0o600])
        }
        let log = try RunLog(path: scratch + "/resolve.log", masker: masker, logger: logger)
        let steps = StepRunner(log: log, deadline: .now + .seconds(60), timeoutText: "60s", stop: StopSignal())
        let job = JobContext(
            steps: steps, environment: environment, scratch: scratch, secrets: try RunSecrets(task: nil, registries: []), mirrors: mirrors,
            gitTokenFile: tokenFile)
        do {
            return try await tools.resolve(job, url: task.context.url, branch: branch)
        } catch let failure as StepFailure {
            throw StepFailure(failure.status, step: failure.step, masker.mask(failure.reason))
        }
    }

    /// A run's log, scratch folder and secrets for one stage; `nil` outcome when they cannot be made.
    func prepare(_ run: RunRecord, task: TaskDefinition?, handle: RunHandle, stage: String, gitToken: String? = nil)
        -> Result<(JobContext, () -> Void), StageFailure>
    {
        var environment = self.environment()
        var masker = SecretMasker()
        if let gitToken { masker.add(gitToken) }
        let secrets: RunSecrets
        do {
            secrets = try RunSecrets(task: task, registries: environment.registries)
            secrets.values.forEach { masker.add($0) }
        } catch {
            return .failure(StageFailure(reason: "cannot read secret file \(error)"))
        }
        let scratch = "\(environment.dataDirectory)/tmp/\(run.runID)-\(stage)"
        let log: RunLog
        do {
            try FileText.makeDirectories(environment.dataDirectory + "/runs")
            try FileText.makeDirectories(scratch, mode: 0o700)
            log = try RunLog(
                path: Self.logPath(dataDirectory: environment.dataDirectory, runID: run.runID), masker: masker, logger: logger.for(run))
        } catch {
            return .failure(StageFailure(reason: "cannot prepare the run: \(error)"))
        }
        if let engines, engines.isConfigured, !run.engine.isEmpty, let engine = engines.engine(named: run.engine) {
            environment.engine = engine.name
            environment.engineEnvironment = EnginePool.environment(for: engine, scratch: scratch)
        }
        let timeout = task?.timeout ?? environment.settings.defaultTimeout
        let steps = StepRunner(log: log, deadline: .now + timeout, timeoutText: DurationParser.format(timeout), stop: handle.stop)
        var tokenFile = task?.gitTokenFile
        if tokenFile == nil, let gitToken {
            // GitHub's token travels to git in a file of the run's scratch (0600), like git_token_file.
            let file = scratch + "/github-token"
            guard FileManager.default.createFile(atPath: file, contents: Data(gitToken.utf8), attributes: [.posixPermissions: 0o600]) else {
                return .failure(StageFailure(reason: "cannot write the GitHub token file in \(scratch)"))
            }
            tokenFile = file
        }
        let job = JobContext(steps: steps, environment: environment, scratch: scratch, secrets: secrets, mirrors: mirrors, gitTokenFile: tokenFile)
        return .success((job, { try? FileManager.default.removeItem(atPath: scratch) }))
    }

    struct StageFailure: Error {
        var reason: String
    }

    /// Fetch, checkout and build. `enterStep` records each step as it starts.
    public func build(
        _ run: RunRecord, task: TaskDefinition?, handle: RunHandle, enterStep: @escaping @Sendable (RunStep) async -> Void = { _ in }
    ) async -> Outcome? {
        guard var task else {
            return (.end(.error, step: .prepare, reason: "task '\(run.task)' is no longer configured"), RunFacts())
        }
        let pullRequest = run.pullRequest
        if pullRequest != nil {
            // A pull request's code is not trusted yet: built only, without secrets.
            task.push = false
            task.secretBuildArgs = []
        }
        var job: JobContext
        let cleanup: () -> Void
        let gitToken = task.gitTokenFile == nil ? await githubToken() : nil
        switch prepare(run, task: task, handle: handle, stage: "build", gitToken: gitToken) {
        case .success(let prepared): (job, cleanup) = prepared
        case .failure(let failure): return (.end(.error, step: .prepare, reason: failure.reason), RunFacts())
        }
        if let pullRequest {
            job.fetchRef = "refs/pull/\(pullRequest)/head"
            job.registryScope = run.fromFork ? .none : .baseImagesOnly
        }
        defer { cleanup() }
        let log = job.log
        let workspace = "\(job.environment.dataDirectory)/work/\(run.runID)"
        defer { try? FileManager.default.removeItem(atPath: workspace) }
        log.line(
            "Run \(run.runID): task \(task.name), commit \(run.commit) (branch \(run.branch)), trigger \(run.trigger.rawValue), attempt \(run.attempt)"
        )
        var durations: [(String, Double)] = []
        var tags: [String] = []
        do {
            let values = templateValues(run: run, task: task)
            tags = try renderTags(task.tags, values: values, log: log)
            if task.cacheFromRegistry, let cache = Self.cacheReference(tags), task.push, pullRequest == nil {
                // Pushed with the images, so a build on a cold engine reuses layers built elsewhere.
                tags.append(cache)
            }
            if pullRequest != nil {
                log.line("pull request #\(pullRequest!): built only (never pushed), no secret build args, \(run.fromFork ? "from a fork: no registry credentials" : "registry credentials of its base images only")")
            }
            defer { for (step, seconds) in durations { SlipwayMetrics.step(step, seconds: seconds) } }
            durations.append(("fetch", try await timed { try await tools.fetch(job, url: run.repoURL, commit: run.commit) }))
            await enterStep(.checkout)
            durations.append(
                ("checkout", try await timed { try await tools.checkout(job, url: run.repoURL, commit: run.commit, into: workspace) }))
            await enterStep(.build)
            var pulled: [String] = []
            durations.append(
                (
                    "build",
                    try await timed {
                        pulled = try await tools.build(
                            job, task: task, workspace: workspace, tags: tags, commit: run.commit, url: run.repoURL, values: values)
                    }
                ))
            if pullRequest == nil { await watchBaseImages(pulled, run: run, task: task, job: job) }
        } catch {
            return ended(error, run: run, log: log, handle: handle, facts: RunFacts(durationsJSON: Self.json(durations)))
        }
        let total = durations.reduce(0) { $0 + $1.1 }
        guard task.push else {
            log.line("push: false: built only, nothing pushed")
            log.line("Run \(run.runID) succeeded after \(String(format: "%.1f", total))s")
            return (.builtOnly, RunFacts(durationsJSON: Self.json(durations), digestsJSON: Self.imagesJSON(tags: tags, pushed: [])))
        }
        log.line("Built in \(String(format: "%.1f", total))s; waiting for a push slot")
        return (.built, RunFacts(durationsJSON: Self.json(durations), digestsJSON: Self.imagesJSON(tags: tags, pushed: [])))
    }

    /// Records the digest each base image has in its registry now, for `trigger.base_image`.
    func watchBaseImages(_ images: [String], run: RunRecord, task: TaskDefinition, job: JobContext) async {
        guard let baseImages, task.trigger.baseImage else { return }
        let client = RegistryClient(registries: job.environment.registries)
        var watched: [(image: String, digest: String)] = []
        for image in images {
            guard let ref = RegistryClient.Reference(image), !ref.isDigest else { continue }
            do {
                let digest = try await client.digest(of: image)
                watched.append((image, digest))
                job.log.line("base image \(image) is \(digest) in its registry: watched for updates")
            } catch {
                job.log.line("base image \(image) is not watched for updates: \(error.description)")
            }
        }
        do {
            try await baseImages.record(task: task.name, runID: run.runID, images: watched)
        } catch {
            job.log.line("cannot record the base images: \(error)")
        }
    }

    /// Pushes the run's images that have no digest yet: after its build, after a restart, or for
    /// `slipway run retry-push`. Never fetches or builds.
    public func push(_ run: RunRecord, task: TaskDefinition?, handle: RunHandle) async -> Outcome? {
        let job: JobContext
        let cleanup: () -> Void
        switch prepare(run, task: task, handle: handle, stage: "push") {
        case .success(let prepared): (job, cleanup) = prepared
        case .failure(let failure): return (.end(.error, step: .push, reason: failure.reason), RunFacts())
        }
        defer { cleanup() }
        let log = job.log
        let images = run.images
        let tags = images.map(\.tag)
        let pending = images.filter { $0.digest.isEmpty }.map(\.tag)
        if run.state.kind == .pushRetry {
            log.line("Run \(run.runID): retrying the push of \(pending.joined(separator: ", "))")
        }
        var durations = run.durations
        var pushed = images.filter { !$0.digest.isEmpty }.map { ($0.tag, $0.digest) }
        do {
            let seconds = try await timed { pushed += try await tools.push(job, tags: pending) }
            durations["push"] = seconds
            SlipwayMetrics.step("push", seconds: seconds)
        } catch {
            log.line("The images are kept locally; `slipway run retry-push \(run.runID)` pushes them once the registry is back.")
            return ended(
                error, run: run, log: log, handle: handle,
                facts: RunFacts(durationsJSON: Self.json(durations), digestsJSON: Self.imagesJSON(tags: tags, pushed: pushed)), step: .push)
        }
        for (tag, digest) in pushed { log.line("pushed \(tag)@\(digest)") }
        let total = durations.values.reduce(0, +)
        log.line(
            run.state.kind == .pushRetry
                ? "Run \(run.runID) succeeded (push retried)" : "Run \(run.runID) succeeded after \(String(format: "%.1f", total))s")
        return (.pushed, RunFacts(durationsJSON: Self.json(durations), digestsJSON: Self.imagesJSON(tags: tags, pushed: pushed)))
    }

    /// A stage's error as the state machine's `end`, or nil for a shutdown (recovered at the next start).
    func ended(_ error: any Error, run: RunRecord, log: RunLog, handle: RunHandle, facts: RunFacts, step: RunStep? = nil) -> Outcome? {
        guard var failure = error as? StepFailure else {
            log.line("Run \(run.runID) error: \(error)")
            return (.end(.error, step: step ?? .prepare, reason: log.mask("\(error)")), facts)
        }
        if failure.status == .canceled {
            if handle.isShutdown { return nil }
            failure.reason = handle.cancelReason ?? "canceled"
        }
        let failedStep = step ?? RunStep(rawValue: failure.step) ?? .prepare
        log.line("Run \(run.runID) \(failure.status.rawValue.lowercased()) in step \(failedStep.rawValue): \(failure.reason)")
        var facts = facts
        facts.exitCode = failure.exitCode
        return (.end(failure.status, step: failedStep, reason: log.mask(failure.reason)), facts)
    }

    /// `<first tag's repository>:buildcache`.
    static func cacheReference(_ tags: [String]) -> String? {
        guard let first = tags.first, let reference = try? DockerReference(first) else { return nil }
        return (reference.registry.map { $0 + "/" } ?? "") + reference.repository + ":buildcache"
    }

    /// `{"tag": "sha256:…"}` for every tag; a tag not pushed (yet) has digest "".
    static func imagesJSON(tags: [String], pushed: [(String, String)]) -> String {
        let digests = Dictionary(pushed, uniquingKeysWith: { _, last in last })
        return "{" + tags.map { "\(JSONText.quote($0)):\(JSONText.quote(digests[$0] ?? ""))" }.joined(separator: ",") + "}"
    }

    func templateValues(run: RunRecord, task: TaskDefinition) -> [String: String] {
        let date = Timestamp.now().iso8601  // 2026-11-26T18:15:00.123Z → 20261126-181500
        let digits = date.filter(\.isNumber)
        var values = [
            ".Run.ID": run.runID, ".Commit": run.commit, ".Commit.Short": String(run.commit.prefix(7)), ".Branch": run.branch,
            ".Tag": run.tag, ".Task": task.name, ".Date": "\(digits.prefix(8))-\(digits.dropFirst(8).prefix(6))",
            ".PR": run.pullRequest.map(String.init) ?? "",
        ]
        if let semver = Semver(run.tag) { values.merge(semver.templateValues) { _, new in new } }
        return values
    }

    /// The run's tags: a tag whose template uses a variable that is empty for this run is left
    /// out (the log says so); the run fails only when no tag is left, or one is no valid reference.
    func renderTags(_ templates: [String], values: [String: String], log: RunLog) throws -> [String] {
        var tags: [String] = []
        for text in templates {
            let template = try Template(text)
            let empty = template.emptyVariables(values)
            guard empty.isEmpty else {
                log.line("tag '\(text)' left out: \(empty.joined(separator: ", ")) is empty for this run")
                continue
            }
            let tag = template.render(values)
            do { _ = try DockerReference(tag) } catch let invalid as DockerReference.Invalid {
                throw StepFailure(.failed, step: "prepare", invalid.description)
            }
            if !tags.contains(tag) { tags.append(tag) }
        }
        guard !tags.isEmpty else {
            throw StepFailure(.failed, step: "prepare", "no tag is left: every tag in tags uses a variable that is empty for this run")
        }
        return tags
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

    /// Durations in step order.
    static func json(_ durations: [String: Double]) -> String {
        json(["fetch", "checkout", "build", "push"].compactMap { step in durations[step].map { (step, $0) } })
    }
}

/// The secret values one run may use, read from their files at the start of the run.
struct RunSecrets: Sendable {
    var gitToken: String?
    var registryPasswords: [String: String] = [:]
    var buildArgs: [(name: String, value: String, file: String)] = []

    init(task: TaskDefinition?, registries: [SlipwayConfig.RegistryCredential]) throws {
        if let file = task?.gitTokenFile { gitToken = String(decoding: try FileText.readSecret(file), as: UTF8.self) }
        for registry in registries {
            registryPasswords[registry.server] = String(decoding: try FileText.readSecret(registry.passwordFile), as: UTF8.self)
        }
        for arg in task?.secretBuildArgs ?? [] {
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
    let stop: StopSignal

    /// Runs `command`; throws a `StepFailure` naming `step` unless it exits 0. Returns its output lines.
    @discardableResult
    func run(_ command: Command, step: String, quiet: Bool = false, failure: RunStatus = .failed) async throws -> [String] {
        if stop.isFired { throw StepFailure(.canceled, step: step, "canceled") }
        if !quiet { log.command(command) }
        let lines = Mutex<[String]>([])
        let log = self.log
        let outcome: CommandOutcome
        do {
            outcome = try await ProcessRunner.run(command, deadline: deadline, stop: stop) { line in
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
