import Testing

@testable import SlipwayCore

@Suite struct RunStateMachineTests {
    typealias M = RunStateMachine

    static let queued = RunState.queued()
    static func apply(_ state: RunState, _ inputs: [M.Input]) throws -> RunState {
        try inputs.reduce(state) { try M.transition($0, $1) }
    }

    @Test func buildThenPushSucceeds() throws {
        var s = try M.transition(Self.queued, .claimForBuild)
        #expect(s == RunState(status: .running, phase: .building, step: .fetch))
        s = try M.transition(s, .enterStep(.checkout))
        #expect(s.step == .checkout)
        s = try M.transition(s, .enterStep(.build))
        s = try M.transition(s, .built)
        #expect(s == RunState(status: .running, phase: .pushWait, step: .push, reason: waitingForPushSlot))
        s = try M.transition(s, .claimForPush)
        #expect(s == RunState(status: .running, phase: .pushing, step: .push))
        s = try M.transition(s, .pushed)
        #expect(s.status == .succeeded && s.phase == .ended)
    }

    @Test func buildOnlyEndsAtTheBuild() throws {
        let s = try Self.apply(Self.queued, [.claimForBuild, .enterStep(.build), .builtOnly])
        #expect(s.status == .succeeded && s.phase == .ended && s.step == .build)
    }

    @Test func failuresEndInTheirStep() throws {
        let building = try M.transition(Self.queued, .claimForBuild)
        let failed = try M.transition(building, .end(.failed, step: .build, reason: "exit 1"))
        #expect(failed == RunState(status: .failed, phase: .ended, step: .build, reason: "exit 1"))
        let pushing = try Self.apply(Self.queued, [.claimForBuild, .built, .claimForPush])
        let timeout = try M.transition(pushing, .end(.timeout, step: .push, reason: "timed out after 1s"))
        #expect(timeout.status == .timeout && timeout.step == .push)
    }

    @Test(arguments: [RunStatus.succeeded, .queued, .running])
    func endNeedsAFailureStatus(status: RunStatus) throws {
        let building = try M.transition(Self.queued, .claimForBuild)
        #expect(throws: M.IllegalTransition.self) { try M.transition(building, .end(status, step: .build, reason: "")) }
    }

    @Test func pusherCannotEndABuildStep() throws {
        let pushing = try Self.apply(Self.queued, [.claimForBuild, .built, .claimForPush])
        #expect(throws: M.IllegalTransition.self) { try M.transition(pushing, .end(.failed, step: .build, reason: "")) }
    }

    @Test func cancelFromEveryHeldOrWaitingPhase() throws {
        for inputs: [M.Input] in [[], [.claimForBuild], [.claimForBuild, .built], [.claimForBuild, .built, .claimForPush]] {
            let s = try M.transition(try Self.apply(Self.queued, inputs), .cancel(reason: "canceled by root"))
            #expect(s.status == .canceled && s.phase == .ended && s.reason == "canceled by root")
        }
    }

    @Test func onlyQueuedBuildsAreSuperseded() throws {
        let superseded = try M.transition(Self.queued, .supersede(by: "sw9"))
        #expect(superseded.status == .canceled && superseded.reason == "superseded by sw9")
        let running = try M.transition(Self.queued, .claimForBuild)
        #expect(throws: M.IllegalTransition.self) { try M.transition(running, .supersede(by: "sw9")) }
        let retry = try Self.apply(
            Self.queued, [.claimForBuild, .built, .claimForPush, .end(.failed, step: .push, reason: "down"), .retryPush(requestedBy: "root")])
        #expect(throws: M.IllegalTransition.self) { try M.transition(retry, .supersede(by: "sw9")) }
    }

    @Test func pushRetryOnlyAfterAPushThatDidNotSucceed() throws {
        let failedPush = try Self.apply(Self.queued, [.claimForBuild, .built, .claimForPush, .end(.failed, step: .push, reason: "down")])
        let retry = try M.transition(failedPush, .retryPush(requestedBy: "root"))
        #expect(retry == RunState(status: .queued, phase: .pushWait, kind: .pushRetry, step: .push, reason: "push retry requested by root"))
        // The retry keeps its kind through the pusher.
        let pushed = try Self.apply(retry, [.claimForPush, .pushed])
        #expect(pushed.kind == .pushRetry && pushed.status == .succeeded)
        let failedBuild = try Self.apply(Self.queued, [.claimForBuild, .end(.failed, step: .build, reason: "x")])
        #expect(throws: M.IllegalTransition.self) { try M.transition(failedBuild, .retryPush(requestedBy: "root")) }
        #expect(throws: M.IllegalTransition.self) { try M.transition(pushed, .retryPush(requestedBy: "root")) }
        #expect(throws: M.IllegalTransition.self) { try M.transition(Self.queued, .retryPush(requestedBy: "root")) }
    }

    @Test func illegalMovesAreRefused() throws {
        let ended = try Self.apply(Self.queued, [.claimForBuild, .builtOnly])
        let illegal: [(RunState, M.Input)] = [
            (Self.queued, .claimForPush), (Self.queued, .built), (Self.queued, .pushed), (Self.queued, .enterStep(.build)),
            (try M.transition(Self.queued, .claimForBuild), .claimForBuild),
            (try M.transition(Self.queued, .claimForBuild), .enterStep(.push)),
            (try M.transition(Self.queued, .claimForBuild), .pushed),
            (ended, .cancel(reason: "x")), (ended, .claimForBuild), (ended, .end(.failed, step: .build, reason: "")),
        ]
        for (state, input) in illegal {
            #expect(throws: M.IllegalTransition.self, "\(state.phase) + \(input)") { try M.transition(state, input) }
        }
    }

    @Test func restartResumesPushesAndInterruptsBuilds() throws {
        let building = try M.transition(Self.queued, .claimForBuild)
        guard case .interrupted(let lost) = M.afterRestart(building) else { Issue.record("a build is not resumable"); return }
        #expect(lost.status == .error && lost.reason == "interrupted by restart")
        let pushing = try Self.apply(Self.queued, [.claimForBuild, .built, .claimForPush])
        #expect(M.afterRestart(pushing) == .resumePush(RunState(status: .running, phase: .pushWait, step: .push, reason: waitingForPushSlot)))
        let retrying = try Self.apply(
            Self.queued,
            [.claimForBuild, .built, .claimForPush, .end(.error, step: .push, reason: "x"), .retryPush(requestedBy: "root"), .claimForPush])
        guard case .resumePush(let resumed) = M.afterRestart(retrying) else { Issue.record("a push retry must resume"); return }
        #expect(resumed.kind == .pushRetry, "a retry-push interrupted by a restart stays a push retry")
        #expect(M.afterRestart(Self.queued) == .untouched)
    }

    @Test func enumsAndSQLChecksAgree() throws {
        let dir = TempDirectory()
        let db = try SQLiteConnection(path: dir.path + "/s.sqlite")
        try Migration.apply(Migration.all, to: db)
        let sql = try db.prepare("SELECT sql FROM sqlite_master WHERE name = 'run_states'").rows { $0.text(0) }.first ?? ""
        for status in RunStatus.allCases { #expect(sql.contains("'\(status.rawValue)'")) }
        for phase in RunPhase.allCases { #expect(sql.contains("'\(phase.rawValue)'")) }
        try db.execute("INSERT INTO runs (run_id, task, trigger, repo_url, branch, commit_sha, created_at) VALUES ('sw1','t','push','u','b','c','now')")
        #expect(throws: SQLiteError.self) {
            try db.execute("INSERT INTO run_states (run, status, phase, at) VALUES (1, 'Done', 'queued', 'now')")
        }
        #expect(throws: SQLiteError.self) {
            try db.execute("INSERT INTO run_states (run, status, phase, at) VALUES (1, 'Queued', 'limbo', 'now')")
        }
        #expect(throws: SQLiteError.self) {
            try db.execute("INSERT INTO runs (run_id, task, trigger, repo_url, branch, commit_sha, created_at) VALUES ('sw2','t','cron','u','b','c','now')")
        }
    }
}
