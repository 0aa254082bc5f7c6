/// What one stage of one run works with: its log and deadline (`steps`), its scratch folder,
/// the secrets read for it, and the daemon's settings as they were when the run was claimed.
public struct JobContext: Sendable {
    let steps: StepRunner
    let environment: BuildEnvironment
    let scratch: String
    let secrets: RunSecrets
    let mirrors: KeyedLock
    let gitTokenFile: String?
    /// The ref that holds the commit when a plain fetch does not (`refs/pull/7/head`).
    var fetchRef: String? = nil
    /// Which registries' credentials the run's docker commands get.
    var registryScope: RegistryScope = .tagsAndBaseImages

    /// The run's log.
    public var log: RunLog { steps.log }
}

/// Whose registry credentials a build may use (DESIGN.md: only the registries its images name).
public enum RegistryScope: Sendable {
    /// Its tags' and its base images' registries.
    case tagsAndBaseImages
    /// A pull request from the repository itself: its base images' registries only.
    case baseImagesOnly
    /// A pull request from a fork: none.
    case none
}

/// The seam where a run's I/O starts: git and docker. The real tools run processes
/// (`GitDockerTools`); unit tests of the stages use in-memory doubles.
public protocol PipelineTools: Sendable {
    /// Brings the repository's mirror up to date and makes sure it has `commit`.
    func fetch(_ job: JobContext, url: String, commit: String) async throws
    /// Writes the files of exactly `commit` into `workspace`.
    func checkout(_ job: JobContext, url: String, commit: String, into workspace: String) async throws
    /// Builds the image of `task` from `workspace`, tagged with every tag; returns the image
    /// references its Dockerfile pulls (`FROM`, `COPY --from=`).
    @discardableResult
    func build(_ job: JobContext, task: TaskDefinition, workspace: String, tags: [String], commit: String, url: String, values: [String: String])
        async throws -> [String]
    /// Pushes each tag; returns (tag, digest) for each.
    func push(_ job: JobContext, tags: [String]) async throws -> [(String, String)]
    /// The commit `branch` points at on the remote (`git ls-remote`).
    func resolve(_ job: JobContext, url: String, branch: String) async throws -> String
}

/// The real tools: git with a mirror per repository, the docker CLI.
public struct GitDockerTools: PipelineTools {
    public init() {}

    func git(_ job: JobContext) -> GitSteps {
        GitSteps(steps: job.steps, environment: job.environment, scratch: job.scratch, tokenFile: job.gitTokenFile, mirrors: job.mirrors)
    }

    func docker(_ job: JobContext) -> DockerSteps {
        DockerSteps(steps: job.steps, environment: job.environment, scratch: job.scratch, secrets: job.secrets)
    }

    public func fetch(_ job: JobContext, url: String, commit: String) async throws {
        try await git(job).fetch(url: url, commit: commit, ref: job.fetchRef)
    }

    public func checkout(_ job: JobContext, url: String, commit: String, into workspace: String) async throws {
        try await git(job).checkout(url: url, commit: commit, into: workspace)
    }

    public func build(
        _ job: JobContext, task: TaskDefinition, workspace: String, tags: [String], commit: String, url: String, values: [String: String]
    ) async throws -> [String] {
        try await docker(job).build(
            task: task, workspace: workspace, tags: tags, commit: commit, url: url, values: values, scope: job.registryScope)
    }

    public func push(_ job: JobContext, tags: [String]) async throws -> [(String, String)] {
        try await docker(job).push(tags)
    }

    public func resolve(_ job: JobContext, url: String, branch: String) async throws -> String {
        try await git(job).resolve(url: url, branch: branch)
    }
}
