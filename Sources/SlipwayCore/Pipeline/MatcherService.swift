import Logging
import ServiceLifecycle

/// Follows the event log from its cursor, writes a match trace per event and queues runs.
///
/// Each event is matched in one transaction together with the cursor update, so a crash
/// either leaves the event unmatched (it is matched again after restart) or fully recorded:
/// no event ever produces runs twice.
public struct MatcherService: Service {
    public static let cursorName = "matcher"
    static let burstPause: Duration = .milliseconds(5)

    let log: EventLog
    let runs: RunStore
    let tasks: @Sendable () -> [TaskDefinition]
    let onQueued: @Sendable () -> Void
    let logger: Logger

    public init(
        log: EventLog, runs: RunStore, tasks: @escaping @Sendable () -> [TaskDefinition], logger: Logger,
        onQueued: @escaping @Sendable () -> Void
    ) {
        self.log = log
        self.runs = runs
        self.tasks = tasks
        self.logger = logger
        self.onQueued = onQueued
    }

    public func run() async throws {
        let start = try await log.cursor(Self.cursorName)
        logger.info("matcher following the event log", metadata: ["cursor": "\(start)", "tasks": "\(tasks().count)"])
        do {
            for try await batch in log.feed(cursor: Self.cursorName).cancelOnGracefulShutdown() {
                try await match(batch)
                // Let deliveries accumulate briefly: one matcher pass (a read, a transaction and
                // the task hops between them) per few milliseconds instead of one per webhook
                // commit. Under a burst fewer matcher transactions queue on the writer between
                // deliveries (`ingest.sh 32 8`: 9.9k vs 9.2k/s); at one connection, where every
                // delivery is its own commit, a pass per delivery cost a third of the CPU
                // (`ingest.sh 1 6`: 4.3 vs 7.1 CPU s per 10k deliveries, three rounds each). A run
                // is queued at most 5 ms later; an idle matcher does not wake for it. A shutdown
                // during the pause ends the feed; what arrived meanwhile is matched below.
                try? await Task.sleep(for: Self.burstPause)
            }
        } catch is CancellationError {
            // Shutdown (graceful or not): the drain below finishes what was committed.
        }
        // Shutdown: every delivery committed (and so acknowledged) until now is matched and
        // recorded with the cursor before the matcher stops, so a restart starts after it.
        try await matchCommitted()
    }

    /// Matches the events committed up to now that the matcher has not seen yet.
    func matchCommitted() async throws {
        let end = log.lastCommittedSeq
        var position = try await log.cursor(Self.cursorName)
        while position < end {
            let batch = try await log.events(after: position, limit: 256).filter { $0.seq <= end }
            guard let last = batch.last else { break }
            try await match(batch)
            position = last.seq
        }
    }

    /// What matching `event` against `tasks` yields: the trace, and the runs to queue.
    public struct Plan: Sendable {
        public var push: PushEvent?
        public var pullRequest: PullRequestEvent?
        public var decodeError: String?
        public var traces: [(task: String, verdict: TaskMatcher.Verdict)]
        public var runs: [NewRun]
    }

    /// `trigger` overrides the run's trigger (`replay`); otherwise it follows the event.
    public static func plan(_ event: StoredEvent, tasks: [TaskDefinition], trigger override: RunTrigger? = nil) -> Plan {
        var push: PushEvent?
        var pullRequest: PullRequestEvent?
        var decodeError: String?
        if !tasks.isEmpty {
            do {
                if event.eventType == "push" { push = try PushEvent.decode(event) }
                if event.eventType == "pull_request" { pullRequest = try PullRequestEvent.decode(event) }
            } catch {
                decodeError = error.description
            }
        }
        var traces: [(task: String, verdict: TaskMatcher.Verdict)] = []
        var runs: [NewRun] = []
        if let made = InternalEvent.decode(event) {
            for task in tasks {
                let (verdict, run) = TaskMatcher.verdict(task: task, internalEvent: made, eventSeq: event.seq)
                traces.append((task.name, verdict))
                if var run {
                    if let override { run.trigger = override }
                    runs.append(run)
                }
            }
            return Plan(push: nil, pullRequest: nil, decodeError: nil, traces: traces, runs: runs)
        }
        for task in tasks {
            let verdict =
                event.eventType == "pull_request"
                ? TaskMatcher.verdict(task: task, pullRequest: pullRequest)
                : TaskMatcher.verdict(task: task, eventType: event.eventType, push: push)
            traces.append((task.name, verdict))
            guard verdict.isMatch else { continue }
            if let push, let branch = push.branch {
                runs.append(
                    NewRun(
                        task: task.name, trigger: override ?? .push, eventSeq: event.seq, repoURL: task.context.url, branch: branch,
                        commit: push.after))
            } else if let push, let tag = push.tag {
                runs.append(
                    NewRun(
                        task: task.name, trigger: override ?? .tag, eventSeq: event.seq, repoURL: task.context.url, branch: "",
                        commit: push.after, tag: tag))
            } else if let pr = pullRequest {
                // The head is fetched from the task's own repository (refs/pull/N/head), never the fork's URL.
                var run = NewRun(
                    task: task.name, trigger: override ?? .pullRequest, eventSeq: event.seq, repoURL: task.context.url,
                    branch: pr.headRef, commit: pr.headSHA, pullRequest: pr.number)
                run.fromFork = pr.isFromFork
                runs.append(run)
                let credentials =
                    pr.isFromFork
                    ? "from a fork: built without registry credentials" : "built with its base images' registry credentials only"
                traces[traces.count - 1].verdict = .matchedNote("pull request #\(pr.number): built, never pushed, no secret build args; \(credentials)")
            }
        }
        return Plan(push: push, pullRequest: pullRequest, decodeError: decodeError, traces: traces, runs: runs)
    }

    /// Matches a batch of events in one transaction (traces, runs, cursor), then logs each.
    func match(_ batch: [StoredEvent]) async throws {
        let tasks = self.tasks()
        let plans = batch.map { Self.plan($0, tasks: tasks) }
        let created = try await runs.recordMatches(
            zip(batch, plans).map { RunStore.MatchRecord(eventSeq: $0.seq, traces: $1.traces, runs: $1.runs) }, cursor: Self.cursorName)
        for (index, event) in batch.enumerated() {
            log(event, plan: plans[index], created: created[index], noTasks: tasks.isEmpty)
        }
        if created.contains(where: { !$0.isEmpty }) { onQueued() }
    }

    func log(_ event: StoredEvent, plan: Plan, created: [String], noTasks: Bool) {
        var meta: Logger.Metadata = ["event.seq": "\(event.seq)", "delivery.id": "\(event.deliveryID)", "event.type": "\(event.eventType)"]
        if let push = plan.push {
            meta["repo"] = "\(push.repositoryName)"
            meta["commit"] = "\(push.after)"
        }
        if let error = plan.decodeError {
            logger.error("push payload cannot be decoded", metadata: meta.merging(["error": "\(error)"]) { $1 })
        }
        if noTasks {
            logger.debug("event matched no task", metadata: meta.merging(["reason": "no tasks configured"]) { $1 })
        }
        for (task, verdict) in plan.traces where !verdict.isMatch {
            logger.info("task not triggered", metadata: meta.merging(["task": "\(task)", "reason": "\(verdict.reason)"]) { $1 })
        }
        for (run, id) in zip(plan.runs, created) {
            logger.notice("run queued", metadata: meta.merging(["task": "\(run.task)", "run.id": "\(id)"]) { $1 })
        }
    }
}
