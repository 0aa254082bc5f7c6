import Foundation
import HTTPTypes
import Logging
import SlipwayCore

/// What an operator can ask for, from the admin API or the web page: one implementation each.
public struct Operations: Sendable {
    let config: ConfigStore
    let log: EventLog
    let runs: RunStore
    let executor: RunExecutor
    let control: RunControl
    let wake: CommitSignal
    let pushWake: CommitSignal
    let logger: Logger

    public init(
        config: ConfigStore, log: EventLog, runs: RunStore, executor: RunExecutor, control: RunControl, wake: CommitSignal,
        pushWake: CommitSignal, logger: Logger
    ) {
        self.config = config
        self.log = log
        self.runs = runs
        self.executor = executor
        self.control = control
        self.wake = wake
        self.pushWake = pushWake
        self.logger = logger
    }

    /// A refusal with the HTTP status that says it.
    public struct Refusal: Error {
        public var status: HTTPResponse.Status
        public var message: String
    }

    /// Queues a manual run of `name` on the head of `branch` (default: the context's) or on `commit`.
    public func queueManualRun(task name: String, branch: String?, commit: String?, who: String) async throws -> String {
        guard let task = config.task(named: name) else { throw Refusal(status: .notFound, message: "no task named '\(name)'") }
        if branch != nil && commit != nil { throw Refusal(status: .badRequest, message: "give --branch or --commit, not both") }
        let branch = branch ?? task.context.branch
        let resolved: String
        if let given = commit {
            guard TaskMatcher.isCommitSHA(given.lowercased()) else {
                throw Refusal(status: .badRequest, message: "--commit needs a full 40-character SHA, got '\(given)'")
            }
            resolved = given.lowercased()
        } else {
            do {
                try GitContext.checkBranch(branch)
                resolved = try await executor.resolveBranch(task: task, branch: branch)
            } catch let failure as StepFailure {
                throw Refusal(status: .unprocessableContent, message: "cannot resolve branch '\(branch)': \(failure.reason)")
            } catch let invalid as GitContext.Invalid {
                throw Refusal(status: .badRequest, message: invalid.description)
            }
        }
        let runID = try await runs.enqueue(
            NewRun(
                task: task.name, trigger: .manual, eventSeq: nil, repoURL: task.context.url, branch: branch, commit: resolved, requestedBy: who))
        wake.bump()
        logger.notice(
            "run queued",
            metadata: [
                "run.id": "\(runID)", "task": "\(task.name)", "trigger": "manual", "commit": "\(resolved)", "requested_by": "\(who)",
            ])
        return runID
    }

    /// Cancels a run where it waits, or stops the stage holding it and awaits the end that stage
    /// records (no polling); a run handed on meanwhile (built → push wait) is tried again.
    /// Returns the run as it is now; nil when it has not stopped yet.
    public func cancel(_ id: String, who: String) async throws -> RunRecord? {
        let reason = "canceled by \(who)"
        for _ in 0..<3 {
            guard let (run, canceledNow) = try await runs.cancelIfWaiting(id, reason: reason) else {
                throw Refusal(status: .notFound, message: "no run with ID '\(id)'")
            }
            if canceledNow {
                logger.notice("waiting run canceled", metadata: ["run.id": "\(id)", "by": "\(who)"])
                return run
            }
            guard !run.status.isFinal else { throw Refusal(status: .conflict, message: "run \(id) already ended \(run.status.rawValue)") }
            let ended = control.requestCancel(id, reason: reason)
            logger.notice("stopping running run", metadata: ["run.id": "\(id)", "by": "\(who)"])
            // TERM, then KILL after the grace period: wait a little longer than that for the end.
            let deadline = ProcessRunner.killGrace + .seconds(10)
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await ended.wait() }
                group.addTask { try? await Task.sleep(for: deadline) }
                await group.next()
                group.cancelAll()
            }
            if let now = try await runs.run(id), now.status.isFinal { return now }
            if !ended.isFired { break }
        }
        return nil
    }

    /// Queues the push of a run's kept images again (after the registry was down).
    public func retryPush(_ id: String, who: String) async throws -> RunRecord {
        switch try await runs.requeuePush(id, requestedBy: who) {
        case .notFound:
            throw Refusal(status: .notFound, message: "no run with ID '\(id)'")
        case .notRetryable(let run):
            let state = run.step == .none ? run.status.rawValue : "\(run.status.rawValue) in step \(run.step.rawValue)"
            throw Refusal(
                status: .conflict,
                message: "run \(id) is \(state): only a run that ended in its push step, with images left to push, can retry the push")
        case .queued(let run):
            pushWake.bump()
            logger.notice("push retry queued", metadata: ["run.id": "\(id)", "task": "\(run.task)", "requested_by": "\(who)"])
            return run
        }
    }

    /// Matches a stored event again (trigger `replay`): its runs and its new match trace are
    /// recorded in one transaction, like the matcher's.
    public func replay(_ seq: Int64, who: String) async throws -> (event: StoredEvent, trace: [AdminAPI.TraceEntry]) {
        guard let event = try await log.event(seq: seq) else { throw Refusal(status: .notFound, message: "no event with seq '\(seq)'") }
        var plan = MatcherService.plan(event, tasks: config.tasks, trigger: .replay)
        for index in plan.runs.indices { plan.runs[index].requestedBy = who }
        let created =
            try await runs.recordMatches([RunStore.MatchRecord(eventSeq: seq, traces: plan.traces, runs: plan.runs)], cursor: nil).first ?? []
        let byTask = Dictionary(zip(plan.runs.map(\.task), created), uniquingKeysWith: { a, _ in a })
        if !created.isEmpty { wake.bump() }
        logger.notice("event replayed", metadata: ["event.seq": "\(seq)", "runs": "\(created.joined(separator: ","))", "requested_by": "\(who)"])
        let trace = plan.traces.map {
            AdminAPI.TraceEntry(task: $0.task, matched: $0.verdict.isMatch, reason: $0.verdict.reason, runId: byTask[$0.task])
        }
        return (event, trace)
    }
}
