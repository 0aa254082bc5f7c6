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
        return env
    }

    /// Writes `config.json` with every configured registry's credentials (0600, deleted with the run).
    func writeConfig() throws {
        try FileText.makeDirectories(dockerConfig, mode: 0o700)
        let auths = environment.registries.map { registry -> String in
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
    }

    /// Resolves `relative` inside `root`, refusing anything (`..`, symlinks) that leads outside it.
    static func contained(_ relative: String, in root: String, what: String) throws -> String {
        let rootReal = URL(fileURLWithPath: root).resolvingSymlinksInPath().path
        let candidate = URL(fileURLWithPath: relative.isEmpty ? root : "\(root)/\(relative)").resolvingSymlinksInPath().path
        guard candidate == rootReal || candidate.hasPrefix(rootReal + "/") else {
            throw StepFailure(.failed, step: "build", "\(what) '\(relative)' leads outside the repository")
        }
        guard FileManager.default.fileExists(atPath: candidate) else {
            throw StepFailure(.failed, step: "build", "\(what) '\(relative)' does not exist at this commit")
        }
        return candidate
    }

    func build(task: TaskDefinition, workspace: String, tags: [String], commit: String, url: String, values: [String: String]) async throws
    {
        let context = try Self.contained(task.context.folder, in: workspace, what: "context folder")
        let dockerfile = try Self.contained(task.dockerfile, in: context, what: "dockerfile")
        var args = ["build", "--network", environment.settings.network, "-f", dockerfile]
        if environment.settings.buildkit { args += ["--progress", "plain"] }
        args += ["--label", "org.opencontainers.image.revision=\(commit)", "--label", "org.opencontainers.image.source=\(url)"]
        if task.noCache { args.append("--no-cache") }
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
        } catch let failure as StepFailure where failure.status == .failed {
            throw await classify(failure)
        }
    }

    /// A failed docker command is the build's fault (`Failed`) only if dockerd is still there: when
    /// it is not (stopped mid-build, socket gone), the run ends `Error` saying so.
    func classify(_ failure: StepFailure) async -> StepFailure {
        var failure = failure
        if Self.isDaemonUnreachable(failure.reason + "\n" + failure.output.joined(separator: "\n")) {
            failure.status = .error
            return failure
        }
        let probe = Command(environment.settings.docker, ["version", "--format", "{{.Server.Version}}"], environment: dockerEnvironment)
        do {
            try await steps.run(probe, step: failure.step, quiet: true)
        } catch let down as StepFailure where down.status == .failed || down.status == .error {
            failure.status = .error
            failure.reason = "the docker daemon became unreachable (\(down.reason)); \(failure.reason)"
        } catch {}
        return failure
    }

    /// Pushes every tag, retrying transient registry failures with exponential backoff; returns tag → digest.
    func push(_ tags: [String]) async throws -> [(String, String)] {
        try await Pusher(steps: steps, docker: environment.settings.docker, environment: dockerEnvironment).push(tags)
    }

    static func isDaemonUnreachable(_ text: String) -> Bool {
        text.contains("Cannot connect to the Docker daemon") || text.contains("error during connect")
            || text.contains("docker.sock: connect: ")
    }
}
