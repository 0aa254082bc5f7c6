import Foundation
import Logging
import Synchronization
import Testing

@testable import SlipwayCore

@Suite struct TriggerTests {
    static func task(
        _ context: String = "https://github.com/octo-org/aci-helloworld.git#main", branches: [String]? = nil, tags: [String] = [],
        prBranches: [String]? = nil
    ) -> TaskDefinition {
        var task = MatcherTests.task(context)
        task.trigger.branches = branches
        task.trigger.tags = tags
        task.trigger.pullRequestBranches = prBranches
        return task
    }

    static func push(ref: String, deleted: Bool = false) -> PushEvent {
        PushEvent(
            ref: ref, before: String(repeating: "0", count: 40), after: String(repeating: "a", count: 40), deleted: deleted,
            headCommitMessage: "release", changedFiles: ["docs/readme.md"],
            repositoryURLs: ["https://github.com/octo-org/aci-helloworld.git"], repositoryName: "octo-org/aci-helloworld")
    }

    @Test func tagPushesMatchOnlyTriggerTags() {
        let tagPush = Self.push(ref: "refs/tags/v1.2.3")
        #expect(TaskMatcher.verdict(task: Self.task(), eventType: "push", push: tagPush) == .skipped("tag push 'v1.2.3': the task has no trigger.tags"))
        // Tag pushes ignore the paths filters (this one changed only docs).
        var filtered = Self.task(tags: ["v*"])
        filtered.paths.include = ["app/**"]
        #expect(TaskMatcher.verdict(task: filtered, eventType: "push", push: tagPush) == .matched)
        #expect(
            TaskMatcher.verdict(task: Self.task(tags: ["release-*"]), eventType: "push", push: tagPush)
                == .skipped("tag 'v1.2.3' matches none of trigger.tags [\"release-*\"]"))
        #expect(
            TaskMatcher.verdict(task: Self.task(tags: ["v*"]), eventType: "push", push: Self.push(ref: "refs/tags/v1.2.3", deleted: true))
                == .skipped("tag 'v1.2.3' was deleted"))
    }

    @Test func branchGlobs() {
        let task = Self.task(branches: ["main", "release/*"])
        #expect(TaskMatcher.verdict(task: task, eventType: "push", push: Self.push(ref: "refs/heads/release/2.0")) == .matched)
        #expect(TaskMatcher.verdict(task: task, eventType: "push", push: Self.push(ref: "refs/heads/main")) == .matched)
        #expect(
            TaskMatcher.verdict(task: task, eventType: "push", push: Self.push(ref: "refs/heads/feature/x"))
                == .skipped("branch 'feature/x' matches none of trigger.branches [\"main\", \"release/*\"]"))
        #expect(!Glob("release/*").matches("release/2.0/hotfix"), "* stays within one segment")
    }

    @Test func tagPushPlansATagRunWithItsName() throws {
        let body = try JSONSerialization.data(withJSONObject: [
            "ref": "refs/tags/v1.2.3", "after": String(repeating: "c", count: 40),
            "repository": ["clone_url": "https://github.com/octo-org/aci-helloworld.git"],
        ])
        let event = StoredEvent(
            seq: 4, receivedAt: "", deliveryID: "d", hookID: "h", eventType: "push", signature: "", headersJSON: "{}", body: Array(body),
            mediaType: "application/json")
        let plan = MatcherService.plan(event, tasks: [Self.task(tags: ["v*"])])
        #expect(plan.runs.count == 1)
        #expect(plan.runs.first?.trigger == .tag && plan.runs.first?.tag == "v1.2.3" && plan.runs.first?.branch == "")
    }

    static func pullRequest(action: String = "synchronize", base: String = "main", fork: Bool = false) -> StoredEvent {
        let head = fork ? "someone/aci-helloworld" : "octo-org/aci-helloworld"
        let payload: [String: Any] = [
            "action": action, "number": 7,
            "pull_request": [
                "number": 7,
                "head": [
                    "ref": "feature", "sha": String(repeating: "d", count: 40),
                    "repo": ["full_name": head, "clone_url": "https://github.com/\(head).git"],
                ],
                "base": [
                    "ref": base, "sha": String(repeating: "e", count: 40),
                    "repo": ["full_name": "octo-org/aci-helloworld", "clone_url": "https://github.com/octo-org/aci-helloworld.git"],
                ],
            ],
            "repository": ["full_name": "octo-org/aci-helloworld", "clone_url": "https://github.com/octo-org/aci-helloworld.git"],
        ]
        let body = try! JSONSerialization.data(withJSONObject: payload)
        return StoredEvent(
            seq: 9, receivedAt: "", deliveryID: "d", hookID: "h", eventType: "pull_request", signature: "", headersJSON: "{}",
            body: Array(body), mediaType: "application/json")
    }

    @Test func pullRequestsBuildTheHeadFromTheTaskRepository() {
        let task = Self.task(prBranches: ["main"])
        let plan = MatcherService.plan(Self.pullRequest(fork: true), tasks: [task])
        let run = plan.runs.first
        #expect(run?.trigger == .pullRequest && run?.pullRequest == 7 && run?.branch == "feature")
        #expect(run?.repoURL == "https://github.com/octo-org/aci-helloworld.git", "never the fork's URL")
        #expect(run?.fromFork == true)
        #expect(plan.traces.first?.verdict.reason.contains("from a fork: built without registry credentials") == true)
        #expect(MatcherService.plan(Self.pullRequest(fork: false), tasks: [task]).runs.first?.fromFork == false)
    }

    @Test func pullRequestSkipsSayWhy() {
        #expect(
            MatcherService.plan(Self.pullRequest(), tasks: [Self.task()]).traces.first?.verdict
                == .skipped("pull requests do not trigger this task (no trigger.pull_requests)"))
        let task = Self.task(prBranches: ["main"])
        for action in ["closed", "labeled", "edited"] {
            #expect(
                MatcherService.plan(Self.pullRequest(action: action), tasks: [task]).traces.first?.verdict.reason.hasPrefix(
                    "pull request action '\(action)' builds nothing") == true)
        }
        #expect(
            MatcherService.plan(Self.pullRequest(base: "dev"), tasks: [task]).traces.first?.verdict.reason.contains(
                "matches none of trigger.pull_requests.branches") == true)
    }

    @Test(arguments: [
        ("v1.2.3", "1.2.3", "1", "1.2"), ("1.2.3", "1.2.3", "1", "1.2"), ("v2.0.0-rc.1", "2.0.0-rc.1", nil, nil),
        ("v10.20.30+build.5", "10.20.30", "10", "10.20"),
    ] as [(String, String, String?, String?)])
    func semverValues(tag: String, version: String, major: String?, minor: String?) throws {
        let semver = try #require(Semver(tag))
        #expect(semver.templateValues[".Semver"] == version)
        #expect(semver.templateValues[".Semver.Major"] == major)
        #expect(semver.templateValues[".Semver.Minor"] == minor)
    }

    @Test(arguments: ["v1.2", "1.2.3.4", "latest", "v01.2.3", "v1.2.3-", "vv1.2.3", "1.2.x", ""])
    func notSemver(tag: String) {
        #expect(Semver(tag) == nil)
    }

    @Test func emptyVariablesLeaveTagsOut() throws {
        let values = [".Tag": "v1.2.3", ".Semver": "1.2.3", ".Semver.Major": "1", ".Semver.Minor": "1.2", ".Branch": ""]
        #expect(try Template("r/web:{{.Semver.Minor}}").emptyVariables(values).isEmpty)
        #expect(try Template("r/web:{{.Branch}}").emptyVariables(values) == ["{{.Branch}}"])
        #expect(try Template("r/web:{{.PR}}").emptyVariables(values) == ["{{.PR}}"])
    }

    @Test func cronParsesAndFindsTheNextSlot() throws {
        let at = { (y: Int, mo: Int, d: Int, h: Int, mi: Int) in UTCCalendar.epochSeconds(year: y, month: mo, day: d, hour: h, minute: mi) }
        let nightly = try CronExpression("0 3 * * *")
        #expect(nightly.next(after: at(2026, 11, 27, 3, 0)) == at(2026, 11, 28, 3, 0))
        #expect(nightly.next(after: at(2026, 12, 31, 23, 59)) == at(2027, 1, 1, 3, 0), "year end")
        let leap = try CronExpression("30 12 29 2 *")
        #expect(leap.next(after: at(2026, 3, 1, 0, 0)) == at(2028, 2, 29, 12, 30), "29 February: the next leap year")
        let monthEnd = try CronExpression("0 0 31 * *")
        #expect(monthEnd.next(after: at(2026, 4, 1, 0, 0)) == at(2026, 5, 31, 0, 0), "April has no 31st")
        let everyQuarter = try CronExpression("*/15 9-17 * * 1-5")
        #expect(everyQuarter.next(after: at(2026, 11, 27, 17, 50)) == at(2026, 11, 30, 9, 0), "Friday evening → Monday 9:00")
        let sunday = try CronExpression("0 0 * * 7")
        #expect(sunday.next(after: at(2026, 11, 27, 0, 0)) == at(2026, 11, 29, 0, 0), "7 is Sunday too")
        #expect(try CronExpression("* * * * *").next(after: at(2026, 11, 27, 8, 1) + 30) == at(2026, 11, 27, 8, 2))
        #expect(try CronExpression("0 0 30 2 *").next(after: at(2026, 1, 1, 0, 0)) == nil)
    }

    @Test(arguments: [
        ("0 3 * *", "must have 5 fields"), ("61 * * * *", "minute field '61'"), ("* 24 * * *", "hour field '24'"),
        ("* * 0 * *", "day-of-month field '0'"), ("* * * 13 *", "month field '13'"), ("*/0 * * * *", "step must be a positive number"),
        ("a * * * *", "is not a number"), ("5-1 * * * *", "outside"),
    ])
    func badCron(text: String, problem: String) {
        #expect(throws: CronExpression.Invalid.self) { try CronExpression(text) }
        do { _ = try CronExpression(text) } catch { #expect(error.description.contains(problem), "\(error.description)") }
    }

    @Test func cronErrorsNameTheLine() {
        let yaml = """
            tasks:
              - name: web
                context: "https://github.com/o/web.git#main"
                tags: ["r/web:latest"]
                trigger:
                  schedule: ["0 3 * * *", "0 25 * * *"]
            """
        #expect {
            try ConfigLoader.parse(yaml, file: "/etc/slipway/slipway.yaml")
        } throws: { error in
            let text = "\(error)"
            return text.contains("slipway.yaml:6") && text.contains("hour field '25'")
        }
    }

    @Test func fromLinesAreParsed() {
        let dockerfile = """
            # syntax=docker/dockerfile:1
            ARG BASE=registry.example.com/base/go:1.22
            ARG VARIANT
            FROM --platform=$BUILDPLATFORM ${BASE} AS build
            RUN make
            FROM build AS test
            FROM scratch
            COPY --from=build /out /out
            COPY --from=127.0.0.1:5077/tools/cli:${TAG:-stable} /cli /cli
            FROM \\
              busybox:${VARIANT:-1.36}
            """
        #expect(
            DockerfileScan.baseImages(dockerfile) == [
                "registry.example.com/base/go:1.22", "127.0.0.1:5077/tools/cli:stable", "busybox:1.36",
            ])
        #expect(DockerfileScan.baseImages(dockerfile, buildArgs: ["BASE": "alpine:3"]).first == "alpine:3")
        #expect(DockerfileScan.registryHost(of: "127.0.0.1:5077/tools/cli:stable") == "127.0.0.1:5077")
        #expect(DockerfileScan.registryHost(of: "busybox:1.36") == "docker.io")
        #expect(DockerfileScan.serverHost("https://index.docker.io/v1/") == "docker.io")
    }
}

@Suite struct InternalEventTests {
    @Test func timerEventsQueueTheirTaskOnTheResolvedHead() throws {
        var task = MatcherTests.task()
        task.trigger.schedule = [try CronExpression("0 3 * * *")]
        let head = String(repeating: "b", count: 40)
        let made = InternalEvent(
            kind: "schedule", targets: [.init(task: "hello", branch: "main", commit: head, error: nil)], source: "0 3 * * *",
            detail: "2026-11-27T03:00:00.000Z")
        let delivery = try made.delivery(id: "schedule-hello-1")
        let event = StoredEvent(
            seq: 5, receivedAt: "", deliveryID: delivery.deliveryID, hookID: delivery.hookID, eventType: delivery.eventType,
            signature: delivery.signature, headersJSON: "{}", body: delivery.body, mediaType: delivery.mediaType)
        var other = MatcherTests.task()
        other.name = "other"
        let plan = MatcherService.plan(event, tasks: [task, other])
        #expect(plan.runs.map(\.task) == ["hello"] && plan.runs.first?.trigger == .timer && plan.runs.first?.commit == head)
        #expect(plan.traces.last?.verdict.isMatch == false)
        // A replay of it is a replay.
        #expect(MatcherService.plan(event, tasks: [task], trigger: .replay).runs.first?.trigger == .replay)
        // A branch that could not be resolved says why in the trace.
        let failed = InternalEvent(
            kind: "schedule", targets: [.init(task: "hello", branch: "main", commit: nil, error: "cannot reach the git server")],
            source: "0 3 * * *", detail: "x")
        let d2 = try failed.delivery(id: "s2")
        let e2 = StoredEvent(
            seq: 6, receivedAt: "", deliveryID: d2.deliveryID, hookID: d2.hookID, eventType: d2.eventType, signature: d2.signature,
            headersJSON: "{}", body: d2.body, mediaType: d2.mediaType)
        #expect(MatcherService.plan(e2, tasks: [task]).traces.first?.verdict.reason.contains("cannot reach the git server") == true)
    }

    @Test func aMissedSlotRunsOnceAtStart() async throws {
        let dir = TempDirectory()
        let log = try EventLog(database: Database(path: dir.path + "/s.sqlite"))
        var task = MatcherTests.task()
        task.trigger.schedule = [try CronExpression("* * * * *")]
        let t0 = UTCCalendar.epochSeconds(year: 2026, month: 11, day: 27, hour: 8, minute: 0)
        try await log.saveCursor(ScheduleService.cursorName, seq: t0 / 60)  // last checked 08:00
        let clock = Mutex<Int64>(t0 + 10 * 60 + 5)  // started again at 08:10:05: ten slots missed
        let scheduled = task
        let service = ScheduleService(
            log: log, tasks: { [scheduled] }, resolve: { _ in (String(repeating: "c", count: 40), nil) }, logger: Logger(label: "t"),
            now: { clock.withLock { $0 } })
        let running = Task { try await service.run() }
        // The start minute is saved only after the catch-up events are appended: then it is done.
        for _ in 0..<500 where try await log.cursor(ScheduleService.cursorName) < t0 / 60 + 10 {
            try await Task.sleep(for: .milliseconds(10))
        }
        running.cancel()
        #expect(try await log.cursor(ScheduleService.cursorName) == t0 / 60 + 10, "caught up to the start minute")
        let events = try await log.recent(top: 10)
        #expect(events.count == 1, "ten missed slots run once")
        #expect(events.first?.eventType == "schedule" && events.first?.hookID == "slipway" && events.first?.signature == "internal")
        #expect(InternalEvent.decode(events.first!)?.detail == "2026-11-27T08:10:00.000Z", "the latest missed slot")
    }
}
