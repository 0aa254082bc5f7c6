import Foundation

/// `docker build` of the checked-out context, with the run's own DOCKER_CONFIG.
struct DockerSteps: Sendable {
    let steps: StepRunner
    let environment: BuildEnvironment
    let scratch: String
    let secrets: RunSecrets

    var dockerConfig: String { scratch + "/docker" }

    var dockerEnvironment: [String: String] {
        var env = [
            "PATH": environment.path, "HOME": scratch, "LC_ALL": "C", "DOCKER_CONFIG": dockerConfig,
            "DOCKER_BUILDKIT": environment.settings.buildkit ? "1" : "0",
        ]
        if let host = environment.dockerHost { env["DOCKER_HOST"] = host }
        return EnginePool.merging(env, path: environment.path, engine: environment.engineEnvironment)
    }

    /// Writes `config.json` with the credentials of the registries `images` name, and of no other
    /// (0600, deleted with the run): a Dockerfile cannot pull from another team's registry.
    /// Returns the servers written.
    @discardableResult
    func writeConfig(for images: [String]) throws -> [String] {
        try FileText.makeDirectories(dockerConfig, mode: 0o700)
        let hosts = Set(images.map(DockerfileScan.registryHost))
        let chosen = environment.registries.filter { hosts.contains(DockerfileScan.serverHost($0.server)) }
        let auths = chosen.map { registry -> String in
            let password = secrets.registryPasswords[registry.server] ?? ""
            let auth = Data("\(registry.username):\(password)".utf8).base64EncodedString()
            return "\(JSONText.quote(registry.server)):{\"auth\":\(JSONText.quote(auth))}"
        }
        let json = "{\"auths\":{\(auths.joined(separator: ","))}}"
        guard
            FileManager.default.createFile(
                atPath: dockerConfig + "/config.json", contents: Data(json.utf8), attributes: [.posixPermissions: 0o600])
        else {
            throw StepFailure(.error, step: "prepare", "cannot write \(dockerConfig)/config.json")
        }
        return chosen.map(\.server)
    }

    /// Resolves `relative` inside `root` with the kernel's rules (`realpath(3)`: every link, up
    /// to the kernel's limit), refusing anything that leads outside it. Fails closed: a path that
    /// cannot be resolved (a loop, too many links, an I/O error) is refused, never passed on.
    static func contained(_ relative: String, in root: String, what: String, shown: String? = nil, directory: Bool) throws -> String {
        let relative = relative
        let name = shown ?? relative
        guard let rootReal = realPath(root) else {
            throw StepFailure(.error, step: "build", "cannot resolve the checkout \(root): \(String(cString: strerror(errno)))")
        }
        let candidate = relative.isEmpty ? root : "\(root)/\(relative)"
        guard let real = realPath(candidate) else {
            let code = errno
            if code == ENOENT {
                // A dangling link may point outside: say so rather than "missing" when it does.
                throw StepFailure(.failed, step: "build", "\(what) '\(name)' does not exist at this commit (or is a link to nothing)")
            }
            throw StepFailure(.failed, step: "build", "\(what) '\(name)' cannot be resolved inside the repository: \(String(cString: strerror(code)))")
        }
        guard real == rootReal || real.hasPrefix(rootReal + "/") else {
            throw StepFailure(.failed, step: "build", "\(what) '\(name)' leads outside the repository")
        }
        var info = stat()
        guard stat(real, &info) == 0 else {
            throw StepFailure(.failed, step: "build", "\(what) '\(name)' cannot be read: \(String(cString: strerror(errno)))")
        }
        let kind = info.st_mode & S_IFMT
        guard directory ? kind == S_IFDIR : kind == S_IFREG else {
            throw StepFailure(.failed, step: "build", "\(what) '\(name)' is not a \(directory ? "directory" : "regular file")")
        }
        return real
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    func build(
        task: TaskDefinition, workspace: String, tags: [String], commit: String, url: String, values: [String: String],
        scope: RegistryScope = .tagsAndBaseImages
    ) async throws -> [String] {
        let context = try Self.contained(task.context.folder, in: workspace, what: "context folder", directory: true)
        let dockerfilePath = task.context.folder.isEmpty ? task.dockerfile : "\(task.context.folder)/\(task.dockerfile)"
        let dockerfile = try Self.contained(dockerfilePath, in: workspace, what: "dockerfile", shown: task.dockerfile, directory: false)
        let text = (try? FileText.read(dockerfile)) ?? ""
        let buildArgValues = Dictionary(
            try task.buildArgs.map { ($0.key, try Template($0.value).render(values)) }, uniquingKeysWith: { _, last in last })
        let baseImages = DockerfileScan.baseImages(text, buildArgs: buildArgValues)
        let servers: [String]
        switch scope {
        case .tagsAndBaseImages: servers = try writeConfig(for: tags + baseImages)
        case .baseImagesOnly: servers = try writeConfig(for: baseImages)
        case .none: servers = try writeConfig(for: [])
        }
        steps.log.line(
            "base images: \(baseImages.isEmpty ? "none" : baseImages.joined(separator: ", ")); registry credentials for: \(servers.isEmpty ? "none" : servers.joined(separator: ", "))")
        var args = ["build", "--network", environment.settings.network, "-f", dockerfile]
        if environment.settings.buildkit { args += ["--progress", "plain"] }
        args += ["--label", "org.opencontainers.image.revision=\(commit)", "--label", "org.opencontainers.image.source=\(url)"]
        if task.noCache { args.append("--no-cache") }
        if task.cacheFromRegistry, let cache = RunExecutor.cacheReference(tags) {
            // Inline cache metadata in the pushed image; a missing cache image is not an error.
            args += ["--cache-from", cache, "--build-arg", "BUILDKIT_INLINE_CACHE=1"]
        }
        for tag in tags { args += ["-t", tag] }
        for arg in task.buildArgs { args += ["--build-arg", "\(arg.key)=\(try Template(arg.value).render(values))"] }
        var env = dockerEnvironment
        for secret in secrets.buildArgs {
            // `--build-arg NAME` without a value makes docker read it from its environment: never argv.
            args += ["--build-arg", secret.name]
            env[secret.name] = secret.value
            if environment.settings.buildkit { args += ["--secret", "id=\(secret.name),src=\(secret.file)"] }
        }
        args.append(context)
        let command = Command(environment.settings.docker, args, environment: env, workingDirectory: context)
        do {
            try await steps.run(command, step: "build")
            return await fromRegistries(baseImages)
        } catch let failure as StepFailure where failure.status == .failed {
            throw await classify(failure)
        }
    }

    /// The base images the engine got from a registry (a locally made or imported image has no
    /// repo digest: no registry can tell us when it changes).
    func fromRegistries(_ images: [String]) async -> [String] {
        var out: [String] = []
        for image in images {
            let inspect = Command(
                environment.settings.docker, ["image", "inspect", "--format", "{{len .RepoDigests}}", image], environment: dockerEnvironment)
            if let lines = try? await steps.run(inspect, step: "build", quiet: true), lines.first?.trimmingCharacters(in: .whitespaces) != "0" {
                out.append(image)
            } else {
                steps.log.line("base image \(image) is not from a registry: not watched for updates")
            }
        }
        return out
    }

    /// A failed docker command is the build's fault (`Failed`) only if dockerd is still there: when
    /// it is not (stopped mid-build, socket gone), the run ends `Error` saying so.
    func classify(_ failure: StepFailure) async -> StepFailure {
        var failure = failure
        if Self.isDaemonUnreachable(failure.reason + "\n" + failure.output.joined(separator: "\n")) {
            failure.status = .error
            if !environment.engine.isEmpty { failure.reason = "engine \(environment.engine) became unreachable: \(failure.reason)" }
            return failure
        }
        let probe = Command(environment.settings.docker, ["version", "--format", "{{.Server.Version}}"], environment: dockerEnvironment)
        do {
            try await steps.run(probe, step: failure.step, quiet: true)
        } catch let down as StepFailure where down.status == .failed || down.status == .error {
            failure.status = .error
            failure.reason =
                environment.engine.isEmpty
                ? "the docker daemon became unreachable (\(down.reason)); \(failure.reason)"
                : "engine \(environment.engine) became unreachable (\(down.reason)); \(failure.reason)"
        } catch {}
        return failure
    }

    /// Pushes every tag, retrying transient registry failures with exponential backoff; returns tag → digest.
    func push(_ tags: [String]) async throws -> [(String, String)] {
        try writeConfig(for: tags)
        return try await Pusher(steps: steps, docker: environment.settings.docker, environment: dockerEnvironment).push(tags)
    }

    static func isDaemonUnreachable(_ text: String) -> Bool {
        text.contains("Cannot connect to the Docker daemon") || text.contains("error during connect")
            || text.contains("docker.sock: connect: ")
    }
}
