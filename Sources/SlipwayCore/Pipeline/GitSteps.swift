import Foundation

/// The git side of a run: a bare mirror per repository, fetched (not cloned) after the first
/// time, and a checkout of the exact commit. A token reaches git only through an askpass
/// program that reads the token file: never argv, never the URL, never the environment.
struct GitSteps: Sendable {
    let steps: StepRunner
    let environment: BuildEnvironment
    let scratch: String
    let tokenFile: String?
    let mirrors: KeyedLock

    static let askpass = """
        #!/bin/sh
        # Written by slipway for one run: git asks for a username, then a password (the token).
        case "$1" in
          Username*) echo "x-access-token" ;;
          *) head -n 1 "$SLIPWAY_GIT_TOKEN_FILE" ;;
        esac

        """

    /// One mirror per exact URL (a hash of it): `http://h/a/b` and `https://h/a/b` never share
    /// a mirror, so a token is only ever sent to the URL its task names.
    func mirrorPath(url: String) -> String {
        "\(environment.dataDirectory)/git/\(SHA256.hex(Array(url.utf8)).prefix(32)).git"
    }

    var gitEnvironment: [String: String] {
        var env = [
            "PATH": environment.path, "HOME": scratch, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
        ]
        if let tokenFile {
            env["GIT_ASKPASS"] = scratch + "/askpass"
            env["SLIPWAY_GIT_TOKEN_FILE"] = tokenFile
        }
        return env
    }

    func git(_ args: [String], cwd: String? = nil) -> Command {
        Command("git", args, environment: gitEnvironment, workingDirectory: cwd)
    }

    /// The per-run askpass program (0700) that hands git the token, when the task has one.
    func writeAskpass() throws {
        guard tokenFile != nil else { return }
        guard
            FileManager.default.createFile(
                atPath: scratch + "/askpass", contents: Data(Self.askpass.utf8), attributes: [.posixPermissions: 0o700])
        else {
            throw StepFailure(.error, step: "fetch", "cannot write the askpass program in \(scratch)")
        }
    }

    /// Brings the mirror up to date and makes sure it has `commit`.
    func fetch(url: String, commit: String, ref: String? = nil) async throws {
        try writeAskpass()
        let mirror = mirrorPath(url: url)
        await mirrors.acquire(mirror)
        do {
            try await update(mirror: mirror, url: url, commit: commit, ref: ref)
            await mirrors.release(mirror)
        } catch {
            await mirrors.release(mirror)
            throw error
        }
    }

    /// git's words for a server it could not reach (as opposed to one that refused us).
    static let unreachableMarkers = [
        "Could not resolve host", "Failed to connect", "Connection refused", "Connection timed out", "Connection reset",
        "Operation timed out", "Could not connect", "The requested URL returned error: 502", "The requested URL returned error: 503",
        "The requested URL returned error: 504", "unable to access",
    ]

    /// Runs a git network command; a server that cannot be reached ends the run `Error` (not the
    /// build's fault) with a message that says so, so the operator knows a retry will do.
    private func network(_ args: [String], url: String) async throws {
        do {
            try await steps.run(git(args), step: "fetch")
        } catch var failure as StepFailure where failure.status == .failed {
            let text = failure.output.joined(separator: "\n")
            if Self.unreachableMarkers.contains(where: { text.contains($0) }) && !text.contains("returned error: 401")
                && !text.contains("returned error: 403") && !text.contains("Authentication failed")
            {
                failure.status = .error
                failure.reason = "cannot reach the git server for \(url): \(failure.reason)"
            }
            throw failure
        }
    }

    private func update(mirror: String, url: String, commit: String, ref: String?) async throws {
        if FileManager.default.fileExists(atPath: mirror + "/HEAD") {
            try await network(["--git-dir=\(mirror)", "fetch", "--prune", "--quiet", "origin"], url: url)
        } else {
            try FileText.makeDirectories(FileText.directory(of: mirror))
            let partial = mirror + ".partial"
            try? FileManager.default.removeItem(atPath: partial)
            try await network(["clone", "--mirror", "--quiet", "--", url, partial], url: url)
            // Only a complete mirror takes the real name, so a crash mid-clone never leaves a broken one.
            try FileManager.default.moveItem(atPath: partial, toPath: mirror)
        }
        if !(try await hasCommit(mirror: mirror, commit: commit)) {
            // A pull request's head: its ref on the task's own repository (never the fork's URL).
            let what = ref.map { "+\($0):\($0)" } ?? commit
            try await network(["--git-dir=\(mirror)", "fetch", "--quiet", "origin", what], url: url)
            guard try await hasCommit(mirror: mirror, commit: commit) else {
                throw StepFailure(.failed, step: "fetch", "commit \(commit) is not in \(url)")
            }
        }
    }

    private func hasCommit(mirror: String, commit: String) async throws -> Bool {
        do {
            try await steps.run(git(["--git-dir=\(mirror)", "cat-file", "-e", "\(commit)^{commit}"]), step: "fetch", quiet: true)
            return true
        } catch let failure as StepFailure where failure.status == .failed {
            return false
        }
    }

    /// The commit `branch` points at on the remote (`git ls-remote`), for a manual run.
    func resolve(url: String, branch: String) async throws -> String {
        try writeAskpass()
        let output = try await steps.run(
            git(["ls-remote", "--exit-code", "--", url, "refs/heads/\(branch)"]), step: "resolve", quiet: true)
        guard let sha = output.first?.split(separator: "\t").first.map(String.init), TaskMatcher.isCommitSHA(sha) else {
            throw StepFailure(.failed, step: "resolve", "branch '\(branch)' not found in \(url)")
        }
        return sha
    }

    /// The files of exactly `commit`, written from the mirror in one process: `read-tree -u` with
    /// an index of the run's own, so the mirror's HEAD and index are never touched (runs share it)
    /// and no clone (a local upload-pack, hooks, config) is made. The workspace has no `.git`;
    /// a clone's `.git` pointed at the mirror through alternates and was unusable inside a build anyway.
    func checkout(url: String, commit: String, into workspace: String) async throws {
        let mirror = mirrorPath(url: url)
        try? FileManager.default.removeItem(atPath: workspace)
        try FileText.makeDirectories(workspace)
        var env = gitEnvironment
        env["GIT_INDEX_FILE"] = scratch + "/checkout.index"
        try await steps.run(
            Command("git", ["--git-dir=\(mirror)", "--work-tree=\(workspace)", "read-tree", "--reset", "-u", commit], environment: env),
            step: "checkout")
    }
}
