import Testing

@testable import SlipwayCore

@Suite struct MatcherTests {
    static func task(
        _ context: String = "https://github.com/octo-org/aci-helloworld.git#main", include: [String] = [], exclude: [String] = [],
        enabled: Bool = true
    ) -> TaskDefinition {
        TaskDefinition(
            name: "hello", context: try! GitContext.parse(context), dockerfile: "Dockerfile", tags: ["r/app:latest"], gitTokenFile: nil,
            buildArgs: [], secretBuildArgs: [], paths: .init(include: include, exclude: exclude), push: true, noCache: false, timeout: nil,
            enabled: enabled, definedIn: "t.yaml", line: 1)
    }

    static func fixture(_ name: String) throws -> PushEvent {
        try PushEvent.decode(payload: try Fixtures.bytes("github/\(name).json"))
    }

    @Test func pushToTheWatchedBranchMatches() throws {
        let push = try Self.fixture("push")
        #expect(push.after == "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c")
        #expect(TaskMatcher.verdict(task: Self.task(), eventType: "push", push: push) == .matched)
        // clone, html and ssh URLs all name the same repository
        #expect(
            TaskMatcher.verdict(task: Self.task("git@github.com:octo-org/aci-helloworld.git#main"), eventType: "push", push: push)
                == .matched)
    }

    @Test func everySkipSaysWhy() throws {
        let t = Self.task("https://github.com/octo-org/aci-helloworld.git#main:app")
        #expect(TaskMatcher.verdict(task: t, eventType: "push", push: try Self.fixture("push-docs-only")).reason.hasPrefix("none of the"))
        #expect(
            TaskMatcher.verdict(task: Self.task(), eventType: "push", push: try Self.fixture("push-skip-ci"))
                == .skipped("head commit message contains [skip ci]"))
        #expect(
            TaskMatcher.verdict(task: Self.task(), eventType: "push", push: try Self.fixture("push-other-branch")).reason.hasPrefix(
                "branch '"))
        #expect(
            TaskMatcher.verdict(
                task: Self.task("https://github.com/octo-org/aci-helloworld.git#old"), eventType: "push",
                push: try Self.fixture("push-branch-deleted")) == .skipped("branch 'old' was deleted"))
        #expect(TaskMatcher.verdict(task: Self.task(), eventType: "push", push: try Self.fixture("push-tag")).reason.hasPrefix("tag push"))
        #expect(TaskMatcher.verdict(task: Self.task(), eventType: "ping", push: nil) == .skipped("'ping' events do not trigger builds"))
        #expect(
            TaskMatcher.verdict(task: Self.task(enabled: false), eventType: "push", push: try Self.fixture("push"))
                == .skipped("task is disabled"))
        #expect(
            TaskMatcher.verdict(
                task: Self.task("https://github.com/other/repo.git#main"), eventType: "push", push: try Self.fixture("push"))
                == .skipped("repository github.com/octo-org/aci-helloworld is not github.com/other/repo"))
    }

    @Test func pathFilters() {
        let files = ["app/main.go", "docs/readme.md"]
        #expect(TaskMatcher.pathsReason(task: Self.task("https://g/r.git#main:app"), files: files) == nil)
        #expect(
            TaskMatcher.pathsReason(task: Self.task("https://g/r.git#main:web"), files: files)
                == "none of the 2 changed files pass folder 'web'")
        #expect(TaskMatcher.pathsReason(task: Self.task(exclude: ["**/*.md", "app/**"]), files: files) != nil)
        #expect(TaskMatcher.pathsReason(task: Self.task(include: ["docs/**"]), files: files) == nil)
        #expect(TaskMatcher.pathsReason(task: Self.task("https://g/r.git#main:web"), files: []) == nil, "an unknown file list builds")
    }

    @Test(arguments: [
        ("app/**", "app/a/b/c.go", true), ("app/**", "application/x", false), ("**/*.md", "README.md", true),
        ("**/*.md", "a/b/c.md", true), ("*.md", "a/b.md", false), ("src/?.c", "src/a.c", true), ("src/*.c", "src/ab.h", false),
    ])
    func globs(pattern: String, path: String, matches: Bool) {
        #expect(Glob(pattern).matches(path) == matches)
    }

    @Test(arguments: ["registry.example.com/helloworld:sw7", "127.0.0.1:5000/app:latest", "app", "localhost/a/b-c_d:v1.2", "a__b/c"])
    func validReferences(text: String) throws {
        _ = try DockerReference(text)
    }

    @Test(arguments: ["Registry.example.com/App:1", "r/app:", "r/app:-x", "r//app", "r/app:has space", "", "r/-app"])
    func invalidReferences(text: String) {
        #expect(throws: DockerReference.Invalid.self) { try DockerReference(text) }
    }

    @Test func maskerHidesEverySecret() {
        let masker = SecretMasker(["ghp_abc123", "hunter2", "ghp_abc123456"])
        #expect(masker.mask("token ghp_abc123456 and ghp_abc123, pw hunter2!") == "token *** and ***, pw ***!")
        #expect(masker.mask("nothing here") == "nothing here")
    }
}

@Suite struct RunStoreTests {
    let dir = TempDirectory()

    func store() throws -> RunStore { RunStore(database: try Database(path: dir.path + "/slipway.sqlite"), prefix: "sw") }

    static func push(_ commit: String, branch: String = "main") -> NewRun {
        NewRun(task: "web", trigger: .push, eventSeq: nil, repoURL: "https://g/r.git", branch: branch, commit: commit)
    }

    @Test func idsCountUpAndNewerPushSupersedesQueued() async throws {
        let runs = try store()
        #expect(try await runs.enqueue(Self.push("a")) == "sw1")
        #expect(try await runs.enqueue(Self.push("b", branch: "dev")) == "sw2")
        #expect(try await runs.enqueue(Self.push("c")) == "sw3")
        let first = try #require(try await runs.run("sw1"))
        #expect(first.status == .canceled)
        #expect(first.reason == "superseded by sw3")
        #expect(try await runs.run("sw2")?.status == .queued, "another branch is not superseded")
        #expect(try await runs.run("sw3")?.status == .queued)
    }

    @Test func runningBuildsAreNeverSuperseded() async throws {
        let runs = try store()
        _ = try await runs.enqueue(Self.push("a"))
        #expect(try await runs.claimForBuild(limit: 5).map(\.runID) == ["sw1"])
        _ = try await runs.enqueue(Self.push("b"))
        #expect(try await runs.run("sw1")?.status == .running)
    }

    @Test func restartMarksInterruptedAndRetriesOnce() async throws {
        let runs = try store()
        _ = try await runs.enqueue(Self.push("a"))
        _ = try await runs.claimForBuild(limit: 1)
        let first = try await runs.recoverInterrupted()
        #expect(first.interrupted == ["sw1"])
        #expect(first.retried == ["sw2"])
        #expect(try await runs.run("sw1")?.status == .error)
        #expect(try await runs.run("sw1")?.reason == "interrupted by restart")
        let retry = try #require(try await runs.run("sw2"))
        #expect(retry.attempt == 2 && retry.status == .queued && retry.commit == "a")
        // The retry is interrupted too: it is not queued a third time.
        _ = try await runs.claimForBuild(limit: 1)
        let second = try await runs.recoverInterrupted()
        #expect(second.interrupted == ["sw2"] && second.retried.isEmpty)
    }

    @Test func stateHistoryIsAppendOnly() async throws {
        let runs = try store()
        _ = try await runs.enqueue(Self.push("a"))
        let other = try SQLiteConnection(path: dir.path + "/slipway.sqlite")
        #expect(throws: SQLiteError.self) { try other.execute("UPDATE run_states SET status = 'Succeeded'") }
        #expect(throws: SQLiteError.self) { try other.execute("DELETE FROM runs") }
    }
}
