/// Runs, their appended state changes and match traces, in the same database as the event log.
///
/// A run's current state is its latest `run_states` row; nothing is updated in place.
public struct RunStore: Sendable {
    public let database: Database
    public let prefix: String

    public init(database: Database, prefix: String) {
        self.database = database
        self.prefix = prefix
    }

    static let selectRuns = """
        SELECT r.id, r.run_id, r.task, r.trigger, r.event_seq, r.attempt, r.repo_url, r.branch, r.commit_sha, r.created_at,
               s.status, s.reason, s.step, s.exit_code, s.at, s.durations, s.digests
        FROM runs r JOIN run_states s ON s.seq = (SELECT MAX(seq) FROM run_states WHERE run = r.id)
        """

    static func readRun(_ row: SQLiteStatement) -> RunRecord {
        RunRecord(
            number: row.int(0), runID: row.text(1), task: row.text(2), trigger: row.text(3),
            eventSeq: row.isNull(4) ? nil : row.int(4), attempt: Int(row.int(5)), repoURL: row.text(6), branch: row.text(7),
            commit: row.text(8), createdAt: row.text(9), status: RunStatus(rawValue: row.text(10)) ?? .error, reason: row.text(11),
            step: row.text(12), exitCode: row.isNull(13) ? nil : Int(row.int(13)), updatedAt: row.text(14),
            durationsJSON: row.text(15), digestsJSON: row.text(16))
    }

    /// One run by its ID, inside a transaction or a read.
    static func find(_ runID: String, db: SQLiteConnection) throws -> RunRecord? {
        try db.prepare(selectRuns + " WHERE r.run_id = ?").bind([.text(runID)]).rows(readRun).first
    }

    /// Inserts a run with its first state `Queued`, cancelling older queued runs of the same task and branch.
    /// Runs inside a write transaction; returns the new run id.
    static func insert(_ new: NewRun, prefix: String, db: SQLiteConnection) throws -> String {
        let now = Timestamp.now().iso8601
        // The id is known only after the insert, but run_id must be set by it: reserve via the sequence.
        let next =
            (try db.prepare("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'runs'), 0) + 1").rows { $0.int(0) }.first) ?? 1
        let runID = "\(prefix)\(next)"
        try db.prepare(
            "INSERT INTO runs (id, run_id, task, trigger, event_seq, attempt, repo_url, branch, commit_sha, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ).bind([
            .integer(next), .text(runID), .text(new.task), .text(new.trigger), new.eventSeq.map { .integer($0) } ?? .null,
            .integer(Int64(new.attempt)), .text(new.repoURL), .text(new.branch), .text(new.commit), .text(now),
        ]).run()
        let superseded = try db.prepare(
            selectRuns + " WHERE r.task = ? AND r.branch = ? AND s.status = 'Queued' AND r.id <> ?"
        ).bind([.text(new.task), .text(new.branch), .integer(next)]).rows(readRun)
        for old in superseded {
            try append(RunStateChange(.canceled, reason: "superseded by \(runID)"), run: old.number, db: db)
        }
        try append(RunStateChange(.queued, reason: new.trigger == "push" ? "" : new.trigger), run: next, db: db)
        return runID
    }

    static func append(_ change: RunStateChange, run: Int64, db: SQLiteConnection) throws {
        try db.prepare(
            "INSERT INTO run_states (run, status, at, reason, step, exit_code, durations, digests) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        ).bind([
            .integer(run), .text(change.status.rawValue), .text(Timestamp.now().iso8601), .text(change.reason), .text(change.step),
            change.exitCode.map { .integer(Int64($0)) } ?? .null, .text(change.durationsJSON), .text(change.digestsJSON),
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

    /// Stores the match traces and runs of a batch of events and advances the matcher's cursor past
    /// the last, in one transaction: after a crash each event is either fully matched or not at all.
    /// Returns the run IDs created, per event, in the order given.
    public func recordMatches(_ records: [MatchRecord], cursor: String) async throws(DatabaseError) -> [[String]] {
        guard let last = records.last else { return [] }
        let prefix = self.prefix
        // Derived from the durable log and re-derived after a crash: no fsync of its own (see `Database.write`).
        return try await database.write(durable: false) { db in
            var all: [[String]] = []
            for record in records {
                var created: [String: String] = [:]
                for run in record.runs { created[run.task] = try Self.insert(run, prefix: prefix, db: db) }
                for trace in record.traces {
                    try db.prepare("INSERT OR REPLACE INTO match_traces (event_seq, task, matched, reason, run_id) VALUES (?, ?, ?, ?, ?)")
                        .bind([
                            .integer(record.eventSeq), .text(trace.task), .integer(trace.verdict == .matched ? 1 : 0),
                            .text(trace.verdict.reason),
                            created[trace.task].map { .text($0) } ?? .null,
                        ]).run()
                }
                all.append(record.runs.compactMap { created[$0.task] })
            }
            try Self.saveCursor(cursor, seq: last.eventSeq, db: db)
            return all
        }
    }

    static func saveCursor(_ name: String, seq: Int64, db: SQLiteConnection) throws {
        try db.prepare(
            "INSERT INTO cursors (name, seq, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at"
        ).bind([.text(name), .integer(seq), .text(Timestamp.now().iso8601)]).run()
    }

    /// Queues a run outside of matching (manual, replay, retry).
    public func enqueue(_ run: NewRun) async throws(DatabaseError) -> String {
        let prefix = self.prefix
        return try await database.write { db in try Self.insert(run, prefix: prefix, db: db) }
    }

    /// Moves up to `limit` queued runs, oldest first, to `Running` and returns them.
    public func claimQueued(limit: Int) async throws(DatabaseError) -> [RunRecord] {
        guard limit > 0 else { return [] }
        return try await database.write { db in
            let queued = try db.prepare(Self.selectRuns + " WHERE s.status = 'Queued' ORDER BY r.id LIMIT ?")
                .bind([.integer(Int64(limit))]).rows(Self.readRun)
            for run in queued { try Self.append(RunStateChange(.running), run: run.number, db: db) }
            return queued.map {
                var r = $0; r.status = .running; return r
            }
        }
    }

    static let retryPushReason = "retry-push"

    public enum PushRetry: Sendable {
        case notFound
        /// The run is not one whose push failed: its status and step.
        case notRetryable(RunRecord)
        case queued(RunRecord)
    }

    /// Queues the push of a run that ended (failed, errored or was canceled) in its push step again; the kept images
    /// are pushed by the builder without fetching or building (`RunRecord.isPushRetry`).
    public func requeuePush(_ runID: String, requestedBy who: String) async throws(DatabaseError) -> PushRetry {
        try await database.write { db in
            guard let run = try Self.find(runID, db: db) else { return .notFound }
            guard [.failed, .error, .canceled].contains(run.status), run.step == "push", run.images.contains(where: { $0.digest.isEmpty })
            else { return .notRetryable(run) }
            let change = RunStateChange(
                .queued, reason: "\(Self.retryPushReason) requested by \(who)", step: "push", durationsJSON: run.durationsJSON,
                digestsJSON: run.digestsJSON)
            try Self.append(change, run: run.number, db: db)
            return .queued(run)
        }
    }

    /// Appends a state change to a run.
    public func append(_ change: RunStateChange, to run: Int64) async throws(DatabaseError) {
        try await database.write { db in try Self.append(change, run: run, db: db) }
    }

    /// After a crash: runs still `Running` become `Error` ("interrupted by restart") and a first attempt is queued again once.
    public func recoverInterrupted() async throws(DatabaseError) -> (interrupted: [String], retried: [String]) {
        let prefix = self.prefix
        return try await database.write { db in
            let stale = try db.prepare(Self.selectRuns + " WHERE s.status = 'Running' ORDER BY r.id").rows(Self.readRun)
            var retried: [String] = []
            for run in stale {
                try Self.append(RunStateChange(.error, reason: "interrupted by restart"), run: run.number, db: db)
                if run.attempt == 1 {
                    let retry = NewRun(
                        task: run.task, trigger: run.trigger, eventSeq: run.eventSeq, repoURL: run.repoURL, branch: run.branch,
                        commit: run.commit, attempt: 2)
                    retried.append(try Self.insert(retry, prefix: prefix, db: db))
                }
            }
            return (stale.map(\.runID), retried)
        }
    }

    public func run(_ runID: String) async throws -> RunRecord? {
        try await database.read { db in
            try Self.find(runID, db: db)
        }
    }

    /// Runs newest first, optionally filtered.
    public func list(task: String? = nil, status: RunStatus? = nil, top: Int = 15) async throws -> [RunRecord] {
        try await database.read { db in
            var sql = Self.selectRuns + " WHERE 1 = 1"
            var binds: [SQLiteValue] = []
            if let task { sql += " AND r.task = ?"; binds.append(.text(task)) }
            if let status { sql += " AND s.status = ?"; binds.append(.text(status.rawValue)) }
            sql += " ORDER BY r.id DESC LIMIT ?"
            binds.append(.integer(Int64(top)))
            return try db.prepare(sql).bind(binds).rows(Self.readRun)
        }
    }

    /// The run whose state changed most recently (optionally of one task): what `slipway logs` shows.
    public func latestUpdated(task: String? = nil) async throws -> RunRecord? {
        try await database.read { db in
            if let task {
                return try db.prepare(
                    Self.selectRuns + " WHERE r.task = ? ORDER BY s.seq DESC LIMIT 1"
                ).bind([.text(task)]).rows(Self.readRun).first
            }
            let latest = try db.prepare("SELECT run FROM run_states ORDER BY seq DESC LIMIT 1").rows { $0.int(0) }.first
            guard let latest else { return nil }
            return try db.prepare(Self.selectRuns + " WHERE r.id = ?").bind([.integer(latest)]).rows(Self.readRun).first
        }
    }

    /// Cancels `runID` at once if it is still queued. Returns the run as it is now and whether this call
    /// canceled it (nil when the run is unknown).
    public func cancelIfQueued(_ runID: String, reason: String) async throws(DatabaseError) -> (run: RunRecord, canceled: Bool)? {
        try await database.write { db in
            guard var run = try Self.find(runID, db: db) else { return nil }
            guard run.status == .queued else { return (run, false) }
            try Self.append(RunStateChange(.canceled, reason: reason), run: run.number, db: db)
            run.status = .canceled
            run.reason = reason
            return (run, true)
        }
    }

    /// How many runs are queued and running now (for `STATUS=` and metrics).
    public func activeCounts() async throws -> (queued: Int, running: Int) {
        try await database.read { db in
            let rows = try db.prepare(
                """
                SELECT s.status, COUNT(*) FROM run_states s
                WHERE s.status IN ('Queued', 'Running') AND s.seq = (SELECT MAX(seq) FROM run_states WHERE run = s.run)
                GROUP BY s.status
                """
            ).rows { ($0.text(0), Int($0.int(1))) }
            let counts = Dictionary(uniqueKeysWithValues: rows)
            return (counts["Queued"] ?? 0, counts["Running"] ?? 0)
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
