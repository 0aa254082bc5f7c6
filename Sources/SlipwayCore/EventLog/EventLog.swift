import Synchronization

/// The append-only log of accepted deliveries: the durable queue every later stage reads.
public final class EventLog: Sendable {
    public let database: Database
    private let committed: CommitSignal

    /// Wraps an opened database; reads the last committed seq so waiting consumers start right.
    public init(database: Database) throws {
        self.database = database
        let last = try Self.lastSeqBlocking(database)
        self.committed = CommitSignal(last)
    }

    /// Appends `delivery` unless its (hook id, delivery id), or its exact body under any ids, is already stored.
    ///
    /// Returns only after the row is committed with `synchronous=FULL`; throws
    /// `DatabaseError` (`.unavailable`) when the disk refused it, so nothing unstored is acknowledged.
    /// `stored`, when given, is told of the delivery if it is appended (not a duplicate), with
    /// the rest of its group commit, before this returns.
    public func append(_ delivery: Delivery, stored: StoredDeliveries? = nil) async throws(DatabaseError) -> AppendOutcome {
        let result: Result<AppendOutcome, DatabaseError> = await withCheckedContinuation { continuation in
            append(delivery, stored: stored) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// The same append for the webhook listener's event loop: `completion` runs on the writer
    /// thread after the commit (`synchronous=FULL`), one wake-up per group commit, no task hop.
    /// `inlineWhenIdle`: see `Database.write`; when the writer is idle the caller's thread
    /// commits, and `completion` runs there before this returns.
    public func append(
        _ delivery: Delivery, stored: StoredDeliveries? = nil, inlineWhenIdle: Bool = false,
        completion: @escaping @Sendable (Result<AppendOutcome, DatabaseError>) -> Void
    ) {
        // Hashed here, not on the writer thread that commits every connection's deliveries.
        // So are the row's values: the writer thread is serial, every connection waits on it.
        let digest = SHA256.digest(delivery.body)
        let row: [SQLiteValue] = [
            .text(delivery.receivedAt.iso8601), .text(delivery.deliveryID), .text(delivery.hookID),
            .text(delivery.eventType), .text(delivery.signature), .text(delivery.headersJSON),
            .blob(delivery.body), .text(delivery.mediaType),
        ]
        let committed = self.committed
        database.write(
            inlineWhenIdle: inlineWhenIdle,
            { db in
                // A body already in the log is the same delivery whatever the (unsigned) ids say:
                // a captured body re-posted under a new delivery id must not build again.
                if let seq = try db.prepare("SELECT seq FROM event_bodies WHERE sha256 = ?").bind([.blob(digest)]).rows({ $0.int(0) }).first {
                    return AppendOutcome.duplicate(seq)
                }
                try db.prepare(
                    """
                    INSERT INTO events (received_at, delivery_id, hook_id, event_type, signature, headers, body, media_type)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hook_id, delivery_id) DO NOTHING
                    """
                ).bind(row).run()
                if db.changes == 1 {
                    let seq = db.lastInsertRowID
                    try db.prepare("INSERT INTO event_bodies (sha256, seq) VALUES (?, ?)").bind([.blob(digest), .integer(seq)]).run()
                    stored?.record(
                        .init(seq: seq, deliveryID: delivery.deliveryID, eventType: delivery.eventType, signature: delivery.signature))
                    return AppendOutcome.appended(seq)
                }
                let existing = try db.prepare("SELECT seq FROM events WHERE hook_id = ? AND delivery_id = ?")
                    .bind([.text(delivery.hookID), .text(delivery.deliveryID)]).rows { $0.int(0) }
                return AppendOutcome.duplicate(existing.first ?? 0)
            },
            completion: { result in
                if case .success(.appended(let seq)) = result { committed.advance(to: seq) }
                completion(result)
            })
    }

    /// Proves the log is writable right now: a tiny write through the same group-committed path.
    public func checkWritable() async throws(DatabaseError) {
        let now = Timestamp.now().iso8601
        try await database.write { db in
            try db.prepare(
                "INSERT INTO health (id, checked_at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at"
            )
            .bind([.text(now)]).run()
        }
    }

    /// Events with seq greater than `after`, oldest first, at most `limit`.
    public func events(after: Int64, limit: Int = 256) async throws -> [StoredEvent] {
        try await database.read { db in
            try db.prepare(
                """
                SELECT seq, received_at, delivery_id, hook_id, event_type, signature, headers, body, media_type
                FROM events WHERE seq > ? ORDER BY seq LIMIT ?
                """
            ).bind([.integer(after), .integer(Int64(limit))]).rows(Self.readEvent)
        }
    }

    /// The newest `top` events, newest first.
    public func recent(top: Int) async throws -> [StoredEvent] {
        try await database.read { db in
            try db.prepare(
                "SELECT seq, received_at, delivery_id, hook_id, event_type, signature, headers, body, media_type FROM events ORDER BY seq DESC LIMIT ?"
            ).bind([.integer(Int64(top))]).rows(Self.readEvent)
        }
    }

    /// One event by seq.
    public func event(seq: Int64) async throws -> StoredEvent? {
        try await database.read { db in
            try db.prepare(
                "SELECT seq, received_at, delivery_id, hook_id, event_type, signature, headers, body, media_type FROM events WHERE seq = ?"
            ).bind([.integer(seq)]).rows(Self.readEvent).first
        }
    }

    /// Whether a delivery with this GUID is stored (from any hook).
    public func hasDelivery(_ guid: String) async throws -> Bool {
        try await database.read { db in
            try db.prepare("SELECT 1 FROM events WHERE delivery_id = ? LIMIT 1").bind([.text(guid)]).rows { _ in true }.first ?? false
        }
    }

    /// Whether Slipway already asked GitHub to redeliver this GUID (once each).
    public func wasRedelivered(_ guid: String) async throws -> Bool {
        try await database.read { db in
            try db.prepare("SELECT 1 FROM github_redeliveries WHERE guid = ?").bind([.text(guid)]).rows { _ in true }.first ?? false
        }
    }

    public func recordRedelivery(_ guid: String, repo: String) async throws {
        try await database.write { db in
            try db.prepare("INSERT OR IGNORE INTO github_redeliveries (guid, repo, at) VALUES (?, ?, ?)").bind([
                .text(guid), .text(repo), .text(Timestamp.now().iso8601),
            ]).run()
        }
    }

    /// The highest committed seq (0 when empty).
    public var lastCommittedSeq: Int64 { committed.value }

    /// Consumers parked until the next commit.
    public var waitingConsumers: Int { committed.waiting }

    /// The persisted position of the consumer `name` (0 when it never ran).
    public func cursor(_ name: String) async throws -> Int64 {
        try await database.read { db in
            try db.prepare("SELECT seq FROM cursors WHERE name = ?").bind([.text(name)]).rows { $0.int(0) }.first ?? 0
        }
    }

    /// Persists the position of the consumer `name`.
    public func saveCursor(_ name: String, seq: Int64) async throws(DatabaseError) {
        let now = Timestamp.now().iso8601
        try await database.write { db in
            try db.prepare(
                """
                INSERT INTO cursors (name, seq, updated_at) VALUES (?, ?, ?)
                ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at
                """
            ).bind([.text(name), .integer(seq), .text(now)]).run()
        }
    }

    /// Suspends until an event with seq greater than `seq` is committed (or the task is cancelled).
    public func waitForCommit(after seq: Int64) async {
        await committed.wait(beyond: seq)
    }

    /// Batches of every event after the persisted cursor `name`, waiting for new ones; see `EventFeed`.
    public func feed(cursor name: String, batchSize: Int = 256) -> EventFeed {
        EventFeed(log: self, cursorName: name, batchSize: batchSize)
    }

    static func readEvent(_ row: SQLiteStatement) -> StoredEvent {
        StoredEvent(
            seq: row.int(0), receivedAt: row.text(1), deliveryID: row.text(2), hookID: row.text(3),
            eventType: row.text(4), signature: row.text(5), headersJSON: row.text(6), body: row.blob(7), mediaType: row.text(8))
    }

    private static func lastSeqBlocking(_ database: Database) throws -> Int64 {
        let connection = try SQLiteConnection(path: database.path, readOnly: true)
        return try connection.prepare("SELECT COALESCE(MAX(seq), 0) FROM events").rows { $0.int(0) }.first ?? 0
    }
}

/// A monotonically increasing value, and the tasks waiting for it to pass a point.
/// The event log uses it for the highest committed seq; the builder as a wake-up counter.
public final class CommitSignal: Sendable {
    private struct State {
        var value: Int64
        var waiters: [(id: Int, beyond: Int64, continuation: CheckedContinuation<Void, Never>)] = []
        var nextID = 0
    }

    private let state: Mutex<State>

    public init(_ value: Int64 = 0) { state = Mutex(State(value: value)) }

    public var value: Int64 { state.withLock { $0.value } }

    /// How many tasks wait now (tests synchronise on a consumer being parked).
    public var waiting: Int { state.withLock { $0.waiters.count } }

    /// Raises the value by one and wakes every waiter.
    public func bump() { advance(to: nil) }

    public func advance(to target: Int64?) {
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            let seq = target ?? state.value + 1
            guard seq > state.value else { return [] }
            state.value = seq
            let ready = state.waiters.filter { $0.beyond < seq }.map(\.continuation)
            state.waiters.removeAll { $0.beyond < seq }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }

    /// Returns once the value is greater than `seq`, or the task is cancelled.
    public func wait(beyond seq: Int64) async {
        let id = state.withLock { state -> Int in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state -> Bool in
                    if state.value > seq || Task.isCancelled { return true }
                    state.waiters.append((id, seq, continuation))
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            waiter?.resume()
        }
    }
}
