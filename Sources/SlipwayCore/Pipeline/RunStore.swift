/// Runs, their appended state changes and match traces, in the same database as the event log.
///
/// A run's current state is its latest `run_states` row; nothing is updated in place. Every
/// change goes through `RunStateMachine` inside the write transaction that appends it, so a
/// stage can only move a run the way the machine allows, and each stage's queue is a query on
/// the `phase` column: the log stays the queue, and a restart loses nothing.
public struct RunStore: Sendable {
    public let database: Database
    public let prefix: String
    /// Bumped after every write: followers of the run states (commit statuses) wake on it.
    public let changes = CommitSignal()

    public init(database: Database, prefix: String) {
        self.database = database
        self.prefix = prefix
    }

    /// A write of run rows; followers are woken once it is committed.
    func write<T: Sendable>(durable: Bool = true, _ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws(DatabaseError) -> T {
        let result = try await database.write(durable: durable, body)
        changes.bump()
        return result
    }

    static let selectRuns = """
        SELECT r.id, r.run_id, r.task, r.trigger, r.event_seq, r.attempt, r.repo_url, r.branch, r.commit_sha, r.created_at,
               s.status, s.reason, s.step, s.exit_code, s.at, s.durations, s.digests, s.phase, s.kind,
               COALESCE(NULLIF(s.engine, ''), r.engine), r.requested_by, r.tag, r.pr, r.from_fork,
               (SELECT MIN(at) FROM run_states WHERE run = r.id AND status = '\(RunStatus.running.rawValue)'),
               CASE WHEN s.phase = 'ended' THEN s.at END
        FROM runs r JOIN run_states s ON s.seq = (SELECT MAX(seq) FROM run_states WHERE run = r.id)
        """

    static func readRun(_ row: SQLiteStatement) -> RunRecord {
        let state = RunState(
            status: RunStatus(rawValue: row.text(10)) ?? .error, phase: RunPhase(rawValue: row.text(17)) ?? .ended,
            kind: RunKind(rawValue: row.text(18)) ?? .build, step: RunStep(rawValue: row.text(12)) ?? .none, reason: row.text(11))
        var record = RunRecord(
            number: row.int(0), runID: row.text(1), task: row.text(2), trigger: RunTrigger(rawValue: row.text(3)) ?? .manual,
            eventSeq: row.isNull(4) ? nil : row.int(4), attempt: Int(row.int(5)), repoURL: row.text(6), branch: row.text(7),
            commit: row.text(8), createdAt: row.text(9), state: state, exitCode: row.isNull(13) ? nil : Int(row.int(13)),
            updatedAt: row.text(14), startedAt: row.isNull(24) ? nil : row.text(24), finishedAt: row.isNull(25) ? nil : row.text(25),
            durationsJSON: row.text(15), digestsJSON: row.text(16))
        record.engine = row.text(19)
        record.requestedBy = row.text(20)
        record.tag = row.text(21)
        record.pullRequest = row.isNull(22) ? nil : Int(row.int(22))
        record.fromFork = row.int(23) == 1
        return record
    }

    /// One run by its ID, inside a transaction or a read.
    static func find(_ runID: String, db: SQLiteConnection) throws -> RunRecord? {
        try db.prepare(selectRuns + " WHERE r.run_id = ?").bind([.text(runID)]).rows(readRun).first
    }

    static func find(number: Int64, db: SQLiteConnection) throws -> RunRecord? {
        try db.prepare(selectRuns + " WHERE r.id = ?").bind([.integer(number)]).rows(readRun).first
    }

    /// Inserts a run with its first state `Queued`. A new automatic run cancels older queued
    /// automatic runs of the same task and branch; a manual run is never superseded, and
    /// supersedes nothing. Runs inside a write transaction; returns the new run id.
    static func insert(_ new: NewRun, prefix: String, db: SQLiteConnection) throws -> String {
        let now = Timestamp.now().iso8601
        // The id is known only after the insert, but run_id must be set by it: reserve via the sequence.
        let next =
            (try db.prepare("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'runs'), 0) + 1").rows { $0.int(0) }.first) ?? 1
        let runID = "\(prefix)\(next)"
        try db.prepare(
            """
            INSERT INTO runs (id, run_id, task, trigger, event_seq, attempt, repo_url, branch, commit_sha, created_at, requested_by, tag, pr, from_fork)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """
        ).bind([
            .integer(next), .text(runID), .text(new.task), .text(new.trigger.rawValue), new.eventSeq.map { .integer($0) } ?? .null,
            .integer(Int64(new.attempt)), .text(new.repoURL), .text(new.branch), .text(new.commit), .text(now),
            .text(new.requestedBy), .text(new.tag), new.pullRequest.map { .integer(Int64($0)) } ?? .null, .integer(new.fromFork ? 1 : 0),
        ]).run()
        if new.trigger.isAutomatic {
            let automatic = RunTrigger.allCases.filter(\.isAutomatic).map { "'\($0.rawValue)'" }.joined(separator: ", ")
            let superseded = try db.prepare(
                selectRuns
                    + " WHERE r.task = ? AND r.branch = ? AND r.tag = ? AND s.phase = 'queued' AND s.kind = 'build' AND r.trigger IN (\(automatic)) AND r.id <> ?"
            ).bind([.text(new.task), .text(new.branch), .text(new.tag), .integer(next)]).rows(readRun)
            for old in superseded { try apply(.supersede(by: runID), to: old, db: db) }
        }
        var reason = new.trigger == .push ? "" : new.trigger.rawValue
        if !new.requestedBy.isEmpty { reason += " requested by \(new.requestedBy)" }
        try appendRow(.queued(reason: reason), facts: RunFacts(), to: next, db: db)
        return runID
    }

    /// Moves `run` by `input` through the state machine and appends the row. Throws
    /// `IllegalTransition` (rolling the transaction back) when the machine refuses.
    @discardableResult
    static func apply(
        _ input: RunStateMachine.Input, to run: RunRecord, facts: RunFacts = RunFacts(), db: SQLiteConnection, engine: String? = nil
    ) throws -> RunRecord {
        let next = try RunStateMachine.transition(run.state, input)
        try appendRow(next, facts: facts, to: run.number, db: db, current: run, engine: engine)
        var updated = run
        if let engine { updated.engine = engine }
        updated.state = next
        if let d = facts.durationsJSON { updated.durationsJSON = d }
        if let d = facts.digestsJSON { updated.digestsJSON = d }
        updated.exitCode = facts.exitCode
        return updated
    }

    static func appendRow(
        _ state: RunState, facts: RunFacts, to run: Int64, db: SQLiteConnection, current: RunRecord? = nil, engine: String? = nil
    ) throws {
        try db.prepare(
            """
            INSERT INTO run_states (run, status, phase, kind, step, at, reason, exit_code, durations, digests, engine)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """
        ).bind([
            .integer(run), .text(state.status.rawValue), .text(state.phase.rawValue), .text(state.kind.rawValue), .text(state.step.rawValue),
            .text(Timestamp.now().iso8601), .text(state.reason), facts.exitCode.map { .integer(Int64($0)) } ?? .null,
            .text(facts.durationsJSON ?? current?.durationsJSON ?? "{}"), .text(facts.digestsJSON ?? current?.digestsJSON ?? "{}"),
            .text(engine ?? (current?.state.phase == .ended && state.phase == .queued ? "" : current?.engine ?? "")),
        ]).run()
    }

    /// One event's match result, to be recorded.
    public struct MatchRecord: Sendable {
        public var eventSeq: Int64
        public var traces: [(task: String, verdict: TaskMatcher.Verdict)]
        public var runs: [NewRun]

        public init(eventSeq: Int64, traces: [(task: String, verdict: TaskMatcher.Verdict)], runs: [NewRun]) {
            self.eventSeq = eventSeq
            self.traces = traces
            self.runs = runs
        }
    }

    /// Stores the match traces and runs of a batch of events and, when `cursor` is given, advances
    /// the matcher's cursor past the last, in one transaction: after a crash each event is either
    /// fully matched or not at all. Returns the run IDs created, per event, in the order given.
    public func recordMatches(_ records: [MatchRecord], cursor: String?) async throws(DatabaseError) -> [[String]] {
        guard let last = records.last else { return [] }
        let prefix = self.prefix
        // Derived from the durable log and re-derived after a crash: no fsync of its own (see `Database.write`).
        // A replay (no cursor) is an operator's request, not derived: it is committed durably.
        return try await write(durable: cursor == nil) { db in
            var all: [[String]] = []
            for record in records {
                var created: [String: String] = [:]
                for run in record.runs { created[run.task] = try Self.insert(run, prefix: prefix, db: db) }
                for trace in record.traces {
                    try db.prepare("INSERT OR REPLACE INTO match_traces (event_seq, task, matched, reason, run_id) VALUES (?, ?, ?, ?, ?)")
                        .bind([
                            .integer(record.eventSeq), .text(trace.task), .integer(trace.verdict.isMatch ? 1 : 0),
                            .text(trace.verdict.reason),
                            created[trace.task].map { .text($0) } ?? .null,
                        ]).run()
                }
                all.append(record.runs.compactMap { created[$0.task] })
            }
            if let cursor { try Self.saveCursor(cursor, seq: last.eventSeq, db: db) }
            return all
        }
    }

    static func saveCursor(_ name: String, seq: Int64, db: SQLiteConnection) throws {
        try db.prepare(
            "INSERT INTO cursors (name, seq, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at"
        ).bind([.text(name), .integer(seq), .text(Timestamp.now().iso8601)]).run()
    }

    /// Queues a run outside of matching (manual, retry).
    public func enqueue(_ run: NewRun) async throws(DatabaseError) -> String {
        let prefix = self.prefix
        return try await write { db in try Self.insert(run, prefix: prefix, db: db) }
    }

    /// The builder's queue: moves up to `limit` queued runs, oldest first, to `Running`
    /// (`building`) on `engine` and returns them.
    public func claimForBuild(limit: Int, engine: String = EnginePool.implicitEngine) async throws(DatabaseError) -> [RunRecord] {
        guard limit > 0 else { return [] }
        return try await write { db in
            let queued = try db.prepare(Self.selectRuns + " WHERE s.phase = 'queued' ORDER BY r.id LIMIT ?")
                .bind([.integer(Int64(limit))]).rows(Self.readRun)
            return try queued.map { run in
                var claimed = try Self.apply(.claimForBuild, to: run, db: db)
                claimed.engine = engine
                return claimed
            }
        }
    }

    /// Queued runs that cannot start now get `reason` (once: runs already saying so are left alone).
    public func holdQueued(reason: String) async throws(DatabaseError) {
        try await write { db in
            let queued = try db.prepare(Self.selectRuns + " WHERE s.phase = 'queued' AND s.reason <> ?").bind([.text(reason)]).rows(Self.readRun)
            for run in queued { try Self.apply(.hold(reason: reason), to: run, db: db) }
        }
    }

    /// The oldest queued runs, for the builder to place on engines.
    public func queued(limit: Int) async throws -> [RunRecord] {
        try await database.read { db in
            try db.prepare(Self.selectRuns + " WHERE s.phase = 'queued' ORDER BY r.id LIMIT ?").bind([.integer(Int64(limit))]).rows(Self.readRun)
        }
    }

    /// Claims these runs for the builder, each on its engine; those no longer queued are skipped.
    public func claim(_ placements: [(run: Int64, engine: String)]) async throws(DatabaseError) -> [RunRecord] {
        guard !placements.isEmpty else { return [] }
        return try await write { db in
            var claimed: [RunRecord] = []
            for (number, engine) in placements {
                guard let run = try Self.find(number: number, db: db), run.state.phase == .queued else { continue }
                claimed.append(try Self.apply(.claimForBuild, to: run, db: db, engine: engine))
            }
            return claimed
        }
    }

    /// The pusher's queue: moves up to `limit` runs waiting for a push slot, oldest wait first, to `pushing`.
    public func claimForPush(limit: Int) async throws(DatabaseError) -> [RunRecord] {
        guard limit > 0 else { return [] }
        return try await write { db in
            let waiting = try db.prepare(Self.selectRuns + " WHERE s.phase = 'push-wait' ORDER BY s.seq LIMIT ?")
                .bind([.integer(Int64(limit))]).rows(Self.readRun)
            return try waiting.map { try Self.apply(.claimForPush, to: $0, db: db) }
        }
    }

    /// Appends the transition `input` to the run numbered `number` (as the stage holding it reports).
    @discardableResult
    public func apply(_ input: RunStateMachine.Input, to number: Int64, facts: RunFacts = RunFacts()) async throws -> RunRecord {
        try await write { db in
            guard let run = try Self.find(number: number, db: db) else { throw RunStoreError(message: "run \(number) does not exist") }
            return try Self.apply(input, to: run, facts: facts, db: db)
        }
    }

    public enum PushRetry: Sendable {
        case notFound
        /// The run is not one whose push failed: its status and step.
        case notRetryable(RunRecord)
        case queued(RunRecord)
    }

    /// Queues the push of a run that ended (failed, errored or was canceled) in its push step again;
    /// the pusher pushes the kept images without fetching or building (kind `push-retry`).
    public func requeuePush(_ runID: String, requestedBy who: String) async throws -> PushRetry {
        try await write { db in
            guard let run = try Self.find(runID, db: db) else { return .notFound }
            guard run.images.contains(where: { $0.digest.isEmpty }),
                let queued = try? Self.apply(.retryPush(requestedBy: who), to: run, db: db)
            else { return .notRetryable(run) }
            return .queued(queued)
        }
    }

    /// After a restart: a run held by the builder ends `Error` ("interrupted by restart") and a first
    /// attempt is queued again once; a run held by the pusher waits for a push slot again, its images kept.
    public func recoverInterrupted() async throws(DatabaseError) -> (interrupted: [String], retried: [String], resumed: [String]) {
        let prefix = self.prefix
        return try await write { db in
            let held = try db.prepare(Self.selectRuns + " WHERE s.phase IN ('building', 'push-wait', 'pushing') ORDER BY r.id")
                .rows(Self.readRun)
            var interrupted: [String] = []
            var retried: [String] = []
            var resumed: [String] = []
            for run in held {
                switch RunStateMachine.afterRestart(run.state) {
                case .untouched: continue
                case .resumePush(let state):
                    if run.state.phase == .pushWait { continue }  // already waiting: nothing to append
                    try Self.appendRow(state, facts: RunFacts(), to: run.number, db: db, current: run)
                    resumed.append(run.runID)
                case .interrupted(let state):
                    try Self.appendRow(state, facts: RunFacts(), to: run.number, db: db, current: run)
                    interrupted.append(run.runID)
                    if run.attempt == 1 {
                        var retry = NewRun(
                            task: run.task, trigger: run.trigger, eventSeq: run.eventSeq, repoURL: run.repoURL, branch: run.branch,
                            commit: run.commit, attempt: 2, requestedBy: run.requestedBy, tag: run.tag, pullRequest: run.pullRequest)
                        retry.fromFork = run.fromFork
                        retried.append(try Self.insert(retry, prefix: prefix, db: db))
                    }
                }
            }
            return (interrupted, retried, resumed)
        }
    }

    public func run(_ runID: String) async throws -> RunRecord? {
        try await database.read { db in try Self.find(runID, db: db) }
    }

    /// Runs newest first, optionally filtered.
    public func list(task: String? = nil, status: RunStatus? = nil, top: Int = 15, before: Int64? = nil) async throws -> [RunRecord] {
        try await database.read { db in
            var sql = Self.selectRuns + " WHERE 1 = 1"
            var binds: [SQLiteValue] = []
            if let task {
                sql += " AND r.task = ?"
                binds.append(.text(task))
            }
            if let status {
                sql += " AND s.status = ?"
                binds.append(.text(status.rawValue))
            }
            if let before {
                sql += " AND r.id < ?"
                binds.append(.integer(before))
            }
            sql += " ORDER BY r.id DESC LIMIT ?"
            binds.append(.integer(Int64(top)))
            return try db.prepare(sql).bind(binds).rows(Self.readRun)
        }
    }

    /// The run whose state changed most recently (optionally of one task): what `slipway logs` shows.
    public func latestUpdated(task: String? = nil) async throws -> RunRecord? {
        try await database.read { db in
            if let task {
                return try db.prepare(Self.selectRuns + " WHERE r.task = ? ORDER BY s.seq DESC LIMIT 1").bind([.text(task)])
                    .rows(Self.readRun).first
            }
            let latest = try db.prepare("SELECT run FROM run_states ORDER BY seq DESC LIMIT 1").rows { $0.int(0) }.first
            guard let latest else { return nil }
            return try Self.find(number: latest, db: db)
        }
    }

    /// Cancels `runID` at once if no stage is working on it (queued, or waiting for a push slot).
    /// Returns the run as it is now and whether this call canceled it (nil when the run is unknown).
    public func cancelIfWaiting(_ runID: String, reason: String) async throws -> (run: RunRecord, canceled: Bool)? {
        try await write { db in
            guard let run = try Self.find(runID, db: db) else { return nil }
            guard run.state.phase == .queued || run.state.phase == .pushWait else { return (run, false) }
            return (try Self.apply(.cancel(reason: reason), to: run, db: db), true)
        }
    }

    /// How many runs are queued and running now (for `STATUS=` and metrics).
    public func activeCounts() async throws -> (queued: Int, running: Int) {
        try await database.read { db in
            let rows = try db.prepare(
                """
                SELECT s.status, COUNT(*) FROM run_states s
                WHERE s.phase <> 'ended' AND s.seq = (SELECT MAX(seq) FROM run_states WHERE run = s.run)
                GROUP BY s.status
                """
            ).rows { (RunStatus(rawValue: $0.text(0)), Int($0.int(1))) }
            var queued = 0
            var running = 0
            for (status, count) in rows {
                if status == .queued { queued += count } else if status == .running { running += count }
            }
            return (queued, running)
        }
    }

    /// The match trace of one event, by task name.
    public func trace(eventSeq: Int64) async throws -> [MatchTrace] {
        try await database.read { db in
            try db.prepare("SELECT task, matched, reason, run_id FROM match_traces WHERE event_seq = ? ORDER BY task").bind([
                .integer(eventSeq)
            ])
            .rows { MatchTrace(task: $0.text(0), matched: $0.int(1) == 1, reason: $0.text(2), runID: $0.isNull(3) ? nil : $0.text(3)) }
        }
    }
}

/// A run store failure that is no database error (a run that vanished).
public struct RunStoreError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
