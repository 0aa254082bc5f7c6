import Foundation
import SlipwayCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The build pipeline end to end: signed webhook → real git server → real dockerd → real registry.
@Suite(.serialized, .enabled(if: TestEnvironment.shouldRun, TestEnvironment.skipMessage))
struct PipelineSystemTests {
    static func name(_ prefix: String) -> String { "\(prefix)-\(UUID().uuidString.prefix(6).lowercased())" }

    /// A Dockerfile whose layers no other test shares: BuildKit's cache must not turn a slow step into an instant one.
    static func dockerfile(_ steps: String = "") -> String {
        "FROM \(TestEnvironment.baseImage)\nENV SLIPWAY_TEST_NONCE=\(UUID().uuidString)\nARG VERSION=unset\n\(steps)RUN echo \"building version $VERSION\"\nCOPY hello.txt /hello.txt\n"
    }

    static func task(_ name: String, repo: GitRepo, image: String, token: String? = TestEnvironment.tokenFile, extra: String = "") -> String
    {
        """
          - name: \(name)
            context: "\(repo.url)#main:app"
            tags: ["\(TestEnvironment.registry)/\(image):{{.Run.ID}}", "\(TestEnvironment.registry)/\(image):latest"]
            build_args: { VERSION: "{{.Commit.Short}}" }
        \(token.map { "    git_token_file: \"\($0)\"\n" } ?? "")\(extra)
        """
    }

    /// A task `web` building `repo` with exactly these tags (e.g. on a registry the test starts itself).
    static func task(repo: GitRepo, tags: [String], url: String? = nil) -> String {
        """
          - name: web
            context: "\(url ?? repo.url)#main:app"
            tags: [\(tags.map { "\"\($0)\"" }.joined(separator: ", "))]
            git_token_file: "\(TestEnvironment.tokenFile)"
        """
    }

    static func daemon(tasks: [String], maxConcurrent: Int = 2, extraRegistry: String? = nil, stopGrace: String? = nil) throws
        -> DaemonProcess
    {
        var config = try TestEnvironment.buildConfig(maxConcurrent: maxConcurrent, extraRegistry: extraRegistry)
        if let stopGrace {
            config = config.replacingOccurrences(
                of: "default_timeout: \"5m\"", with: "default_timeout: \"5m\", stop_grace: \"\(stopGrace)\"")
        }
        config += "\ntasks:\n" + tasks.joined(separator: "\n")
        let daemon = try DaemonProcess(extraConfig: config)
        try daemon.start()
        return daemon
    }

    @Test func pushBuildsAndPushesBothTags() throws {
        let repo = try GitRepo(name: Self.name("app"))
        let image = repo.name
        let sha = try repo.commit(["app/Dockerfile": Self.dockerfile("RUN sleep 2\n"), "app/hello.txt": "hello\n"])
        let daemon = try Self.daemon(tasks: [Self.task("web", repo: repo, image: image)])
        let seq = try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile", "app/hello.txt"]))

        // While the build runs, the token is in no process's command line.
        try daemon.waitUntil("sw1 running") { try daemon.runs().first?.status == "Running" }
        try expectProcScanFinds(TestEnvironment.token)
        var leaks: [String] = []
        while try daemon.runs().first?.status == "Running" {
            leaks += processesMentioning(TestEnvironment.token)
            usleep(50_000)
        }
        #expect(leaks.isEmpty, "token visible in /proc/*/cmdline: \(leaks)")

        let run = try daemon.waitForRun("sw1")
        #expect(run.status == "Succeeded", "\(run.reason)\n\(daemon.runLog("sw1"))")
        #expect(run.commit == sha, "the commit built is `after`")
        #expect(try daemon.traces(event: seq)["web"] == "matched")
        #expect(try Registry.tags(image) == ["latest", "sw1"])
        let labels = try Registry.labels(image, tag: "sw1")
        #expect(labels["org.opencontainers.image.revision"] == sha)
        #expect(labels["org.opencontainers.image.source"] == repo.url)
        #expect(run.digests.contains("\(TestEnvironment.registry)/\(image):sw1") && run.digests.contains("sha256:"))

        let log = daemon.runLog("sw1")
        #expect(log.contains("$ git clone --mirror --quiet -- \(repo.url)"))
        #expect(log.contains("building version \(sha.prefix(7))"), "build args are rendered")
        #expect(log.contains("Run sw1 succeeded after"))
        // The token is nowhere a user or attacker could read it.
        let token = TestEnvironment.token
        #expect(!log.contains(token))
        #expect(!daemon.log.contains(token))
        let database =
            try Data(contentsOf: URL(fileURLWithPath: daemon.databasePath))
            + ((try? Data(contentsOf: URL(fileURLWithPath: daemon.databasePath + "-wal"))) ?? Data())
        #expect(database.range(of: Data(token.utf8)) == nil, "token stored in the database")
        #expect(!FileManager.default.fileExists(atPath: daemon.dir + "/data/tmp/sw1"), "per-run secrets directory removed")

        // A second push builds from the warm mirror: fetch, not clone.
        let sha2 = try repo.commit(["app/hello.txt": "hello again\n"])
        try daemon.push(repo.pushPayload(after: sha2, files: ["app/hello.txt"]))
        let second = try daemon.waitForRun("sw2")
        #expect(second.status == "Succeeded", "\(second.reason)")
        #expect(daemon.runLog("sw2").contains("fetch --prune --quiet origin"))
        #expect(!daemon.runLog("sw2").contains("clone --mirror"))
    }

    @Test func skippedPushesSayWhy() throws {
        let repo = try GitRepo(name: Self.name("skip"))
        let sha = try repo.commit(["app/Dockerfile": Self.dockerfile(), "app/hello.txt": "x", "docs/readme.md": "docs"])
        let daemon = try Self.daemon(tasks: [Self.task("web", repo: repo, image: repo.name)])
        let docs = try daemon.push(repo.pushPayload(after: sha, files: ["docs/readme.md"]))
        let skip = try daemon.push(repo.pushPayload(after: sha, files: ["app/hello.txt"], message: "tweak [skip ci]"))
        let other = try daemon.push(repo.pushPayload(after: sha, branch: "feature", files: ["app/hello.txt"]))
        let deleted = try daemon.push(repo.pushPayload(after: String(repeating: "0", count: 40), files: [], deleted: true))
        try daemon.waitUntil("traces") { try daemon.traces(event: deleted)["web"] != nil }
        #expect(try daemon.traces(event: docs)["web"] == "none of the 1 changed file pass folder 'app'")
        #expect(try daemon.traces(event: skip)["web"] == "head commit message contains [skip ci]")
        #expect(try daemon.traces(event: other)["web"] == "branch 'feature' is not 'main'")
        #expect(try daemon.traces(event: deleted)["web"] == "branch 'main' was deleted")
        #expect(try daemon.runs().isEmpty, "no run for any of them")
        #expect(daemon.log.contains("task not triggered") && daemon.log.contains("reason=\"head commit message contains [skip ci]\""))
    }

    @Test func wrongTokenFailsWithAClearMessage() throws {
        let repo = try GitRepo(name: Self.name("priv"))
        let sha = try repo.commit(["app/Dockerfile": Self.dockerfile(), "app/hello.txt": "x"])
        let wrong = "/tmp/slipway-wrong-token-\(repo.name)"
        try "ghp_definitely_wrong_token\n".write(toFile: wrong, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: wrong) }
        let daemon = try Self.daemon(tasks: [Self.task("web", repo: repo, image: repo.name, token: wrong)])
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        let run = try daemon.waitForRun("sw1")
        #expect(run.status == "Failed")
        #expect(run.step == "fetch")
        #expect(run.reason.contains("Authentication failed"), "\(run.reason)")
        #expect(!daemon.runLog("sw1").contains("ghp_definitely_wrong_token"))
        #expect(!daemon.log.contains("ghp_definitely_wrong_token"))

        // Without any token the private repository is refused too, with git's own words.
        let none = try Self.daemon(tasks: [Self.task("web", repo: repo, image: repo.name, token: nil)])
        try none.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        let anonymous = try none.waitForRun("sw1")
        #expect(anonymous.status == "Failed")
        #expect(
            anonymous.reason.contains("terminal prompts disabled") || anonymous.reason.contains("Authentication"), "\(anonymous.reason)")
    }

    /// A secret build arg reaches the build (via docker's environment, not argv) and is masked in the log.
    @Test func secretBuildArgsAreMasked() throws {
        let repo = try GitRepo(name: Self.name("secret"))
        let secretFile = "/tmp/slipway-npm-\(repo.name)"
        let secret = "npm_\(UUID().uuidString.prefix(12))"
        try "\(secret)\n".write(toFile: secretFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: secretFile) }
        let dockerfile =
            "FROM \(TestEnvironment.baseImage)\nARG NPM_TOKEN\nRUN echo \"token is $NPM_TOKEN\" && sleep 1\nCOPY hello.txt /hello.txt\n"
        let sha = try repo.commit(["app/Dockerfile": dockerfile, "app/hello.txt": "x"])
        let extra = "    secret_build_args: { NPM_TOKEN: \"\(secretFile)\" }\n    push: false\n"
        let daemon = try Self.daemon(tasks: [Self.task("web", repo: repo, image: repo.name, extra: extra)])
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        try expectProcScanFinds(secret)
        try daemon.waitUntil("sw1 running") { try daemon.runs().first?.status == "Running" }
        var leaks: [String] = []
        while try daemon.runs().first?.status == "Running" {
            leaks += processesMentioning(secret)
            usleep(50_000)
        }
        let run = try daemon.waitForRun("sw1")
        #expect(run.status == "Succeeded", "\(run.reason)")
        #expect(leaks.isEmpty, "secret visible in /proc/*/cmdline: \(leaks)")
        let log = daemon.runLog("sw1")
        #expect(log.contains("token is ***"), "the value reached the build and was masked")
        #expect(!log.contains(secret))
        #expect(!daemon.log.contains(secret))
        #expect(log.contains("push: false: built only, nothing pushed"))
        #expect(try Registry.tags(repo.name).isEmpty)
    }

    /// A repository that tries to reach outside its workspace, or to smuggle options into git.
    @Test func hostileRepositoryCannotEscape() throws {
        let repo = try GitRepo(name: Self.name("hostile"))
        try FileManager.default.createDirectory(atPath: repo.work + "/web", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: repo.work + "/app", withDestinationPath: "/etc")
        try FileManager.default.createSymbolicLink(
            atPath: repo.work + "/web/Dockerfile", withDestinationPath: "../../../../../../etc/hostname")
        let sha = try repo.commit(["web/hello.txt": "x"])
        let web = """
              - name: web
                context: "\(repo.url)#main:web"
                tags: ["\(TestEnvironment.registry)/\(repo.name)-web:{{.Run.ID}}"]
                git_token_file: "\(TestEnvironment.tokenFile)"
            """
        let daemon = try Self.daemon(tasks: [Self.task("app", repo: repo, image: repo.name), web])
        try daemon.push(repo.pushPayload(after: sha, files: []))  // unknown file list: every task builds
        let runs = try ["sw1", "sw2"].map { try daemon.waitForRun($0) }
        let reasons = Set(runs.map(\.reason))
        #expect(runs.allSatisfy { $0.status == "Failed" && $0.step == "build" })
        #expect(reasons == ["context folder 'app' leads outside the repository", "dockerfile 'Dockerfile' leads outside the repository"])
        #expect(!daemon.runLog("sw1").contains("$ docker build") && !daemon.runLog("sw2").contains("$ docker build"), "nothing was built")

        // Options smuggled through the payload's commit, or a manual run's branch, never reach git.
        let marker = "/tmp/slipway-pwned-\(repo.name)"
        let smuggled = try daemon.push(repo.pushPayload(after: "--upload-pack=touch \(marker)", files: ["web/hello.txt"]))
        try daemon.waitUntil("trace") { try daemon.traces(event: smuggled)["web"] != nil }
        #expect(try daemon.traces(event: smuggled)["web"] == "push has no 'after' commit")
        let manual = try run(
            DaemonProcess.binary, ["task", "run", "web", "--branch=--upload-pack=touch \(marker)", "--config", daemon.configPath])
        #expect(manual.status != 0)
        #expect(manual.err.contains("must not start with '-'"), "\(manual.err)")
        #expect(!FileManager.default.fileExists(atPath: marker))
        #expect(try daemon.runs().count == 2)
    }

    @Test func failingDockerfileEndsFailedWithTheError() throws {
        let repo = try GitRepo(name: Self.name("fail"))
        let sha = try repo.commit([
            "app/Dockerfile": "FROM \(TestEnvironment.baseImage)\nRUN echo 'compiling' && echo 'main.c:3: error: expected ;' && exit 3\n",
            "app/hello.txt": "x",
        ])
        let daemon = try Self.daemon(tasks: [Self.task("web", repo: repo, image: repo.name)])
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        let run = try daemon.waitForRun("sw1")
        #expect(run.status == "Failed")
        #expect(run.step == "build")
        let log = daemon.runLog("sw1")
        #expect(log.contains("main.c:3: error: expected ;"))
        #expect(log.contains("Run sw1 failed in step build"))
        #expect(try Registry.tags(repo.name).isEmpty, "nothing pushed")
    }

    /// The registry is down when the push starts and comes back: the push is retried and succeeds.
    @Test func unavailableRegistryIsRetried() throws {
        let port = try DaemonProcess.freePort()
        let flaky = "127.0.0.1:\(port)"
        let repo = try GitRepo(name: Self.name("retry"))
        let sha = try repo.commit(["app/Dockerfile": Self.dockerfile(), "app/hello.txt": "x"])
        let daemon = try Self.daemon(tasks: [Self.task(repo: repo, tags: ["\(flaky)/\(repo.name):{{.Run.ID}}"])], extraRegistry: flaky)
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        try daemon.waitUntil("a failed push attempt") { daemon.runLog("sw1").contains("retrying in") }

        let registry = try Background.registry(port: port, name: repo.name, dir: daemon.dir)
        defer { registry.stop() }

        let run = try daemon.waitForRun("sw1")
        #expect(run.status == "Succeeded", "\(run.reason)\n\(daemon.runLog("sw1"))")
        #expect(try Registry.tags(repo.name, port: port) == ["sw1"])
        #expect(daemon.runLog("sw1").contains("failed (attempt 1 of 4)"))
    }

    @Test func timeoutEndsTimeoutAndLeavesNoProcess() throws {
        let repo = try GitRepo(name: Self.name("slow"))
        let sha = try repo.commit(["app/Dockerfile": Self.dockerfile("RUN sleep 120\n"), "app/hello.txt": "x"])
        let daemon = try Self.daemon(tasks: [Self.task("web", repo: repo, image: repo.name, extra: "    timeout: \"4s\"\n")])
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        let started = Date()
        let run = try daemon.waitForRun("sw1", timeout: 60)
        #expect(run.status == "Timeout")
        #expect(run.reason == "timed out after 4s")
        #expect(Date().timeIntervalSince(started) < 30)
        let workspace = daemon.dir + "/data/work/sw1"
        try daemon.waitUntil("no process of the run left", timeout: 15) { processesMentioning(workspace).isEmpty }
        #expect(processesMentioning("sleep 120").isEmpty, "the build's processes are gone: \(processesMentioning("sleep 120"))")
    }

    @Test func newerPushSupersedesTheQueuedRun() throws {
        let repo = try GitRepo(name: Self.name("coal"))
        let slow = try repo.commit(["app/Dockerfile": Self.dockerfile("RUN sleep 3\n"), "app/hello.txt": "1"])
        let daemon = try Self.daemon(tasks: [Self.task("web", repo: repo, image: repo.name)], maxConcurrent: 1)
        try daemon.push(repo.pushPayload(after: slow, files: ["app/hello.txt"]))
        try daemon.waitUntil("sw1 running") { try daemon.runs().first?.status == "Running" }
        let second = try repo.commit(["app/hello.txt": "2"])
        try daemon.push(repo.pushPayload(after: second, files: ["app/hello.txt"]))
        let third = try repo.commit(["app/hello.txt": "3"])
        try daemon.push(repo.pushPayload(after: third, files: ["app/hello.txt"]))

        let superseded = try daemon.waitForRun("sw2")
        #expect(superseded.status == "Canceled")
        #expect(superseded.reason == "superseded by sw3")
        #expect(try daemon.waitForRun("sw1").status == "Succeeded", "a running build is never killed for a newer push")
        let latest = try daemon.waitForRun("sw3")
        #expect(latest.status == "Succeeded")
        #expect(latest.commit == third)
    }

    /// SIGTERM lets a running build finish within `builds.stop_grace`, and the daemon exits 0.
    @Test func sigtermLetsRunningBuildsFinish() throws {
        let repo = try GitRepo(name: Self.name("grace"))
        let sha = try repo.commit(["app/Dockerfile": Self.dockerfile("RUN echo started && sleep 3\n"), "app/hello.txt": "x"])
        let daemon = try Self.daemon(tasks: [Self.task("web", repo: repo, image: repo.name)], stopGrace: "60s")
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        try daemon.waitUntil("the build running") { daemon.runLog("sw1").contains("started") }
        daemon.signal(SIGTERM)
        #expect(daemon.waitForExit(timeout: 60) == 0)
        let run = try #require(try daemon.runs().first)
        #expect(run.status == "Succeeded", "finished within the grace period: \(run.reason)")
        #expect(daemon.log.contains("stopping: letting running builds finish"))
    }

    /// A build that outlives the grace period is stopped, left to the next start, and retried there.
    @Test func buildsOutlivingTheGraceResumeAtTheNextStart() throws {
        let repo = try GitRepo(name: Self.name("outlive"))
        let sha = try repo.commit(["app/Dockerfile": Self.dockerfile("RUN echo started && sleep 47\n"), "app/hello.txt": "x"])
        let daemon = try Self.daemon(
            tasks: [Self.task("web", repo: repo, image: repo.name, extra: "    timeout: \"2m\"\n")], stopGrace: "1s")
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        try daemon.waitUntil("the build running") { daemon.runLog("sw1").contains("started") }
        let stopped = Date()
        daemon.signal(SIGTERM)
        #expect(daemon.waitForExit(timeout: 30) == 0)
        #expect(Date().timeIntervalSince(stopped) < 15, "grace 1 s, then TERM/KILL of the build")
        #expect(try daemon.runs().first?.status == "Running", "left for the next start")
        #expect(processesMentioning(daemon.dir + "/data/work/sw1").isEmpty)
        try daemon.start()
        let interrupted = try daemon.waitForRun("sw1")
        #expect(interrupted.status == "Error" && interrupted.reason == "interrupted by restart")
        try daemon.waitUntil("the retry running") { try daemon.runs().last?.status == "Running" }
        #expect(try daemon.runs().last?.attempt == 2)
        daemon.signal(SIGTERM)  // and stop the retry the same way, leaving nothing behind
        #expect(daemon.waitForExit(timeout: 30) == 0)
        try daemon.waitUntil("no build left", timeout: 15) { processesMentioning("sleep 47").isEmpty }
    }

    @Test func kill9DuringABuildIsRecoveredAndRetried() throws {
        let repo = try GitRepo(name: Self.name("crash"))
        let sha = try repo.commit(["app/Dockerfile": Self.dockerfile("RUN sleep 4\n"), "app/hello.txt": "x"])
        let daemon = try Self.daemon(tasks: [Self.task("web", repo: repo, image: repo.name)])
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        try daemon.waitUntil("sw1 building") { daemon.runLog("sw1").contains("$ docker build") }
        daemon.signal(SIGKILL)
        daemon.waitForExit()
        #expect(try daemon.runs().first?.status == "Running", "the crash left it running")
        #expect(FileManager.default.fileExists(atPath: daemon.dir + "/data/tmp/sw1-build/docker/config.json"), "credentials left by the crash")

        try daemon.start()
        let interrupted = try daemon.waitForRun("sw1")
        #expect(interrupted.status == "Error")
        #expect(interrupted.reason == "interrupted by restart")
        let retry = try daemon.waitForRun("sw2")
        #expect(retry.status == "Succeeded", "\(retry.reason)")
        #expect(retry.attempt == 2 && retry.commit == sha)
        #expect(try daemon.runs().count == 2, "built once more, not twice more")
        #expect(try daemon.runs().allSatisfy { $0.status != "Running" })
        #expect(!FileManager.default.fileExists(atPath: daemon.dir + "/data/tmp/sw1"), "the restart removed them")
    }
}
