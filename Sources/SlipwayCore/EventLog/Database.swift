import Dispatch
import Synchronization

/// Why a write did not reach the disk.
public struct DatabaseError: Error, CustomStringConvertible, Sendable {
    public enum Code: Sendable, Equatable {
        /// The disk refused the write (full, I/O error, read-only): the caller must not acknowledge.
        case unavailable
        /// The database was closed for shutdown.
        case closed
        /// The statement itself failed (constraint, trigger, bad SQL).
        case statement
    }

    public var code: Code
    public var message: String
    public var description: String { message }

    init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    init(_ error: SQLiteError) {
        self.init(error.isStorageFailure ? .unavailable : .statement, error.description)
    }
}

/// The one writer and the readers of `slipway.sqlite`.
///
/// Writes are **group-committed**: every `write` that arrives while a transaction is being
/// committed joins the next one, so many concurrent callers share one fsync
/// (`synchronous=FULL`). A caller's `write` returns only after its transaction is on disk.
/// All SQLite calls run on dedicated dispatch queues, never on the cooperative pool.
public final class Database: Sendable {
    /// The largest number of writes that share one transaction.
    public static let maxBatch = 1024

    public let path: String
    private let writerQueue = DispatchQueue(label: "slipway.db.writer")
    private let readerQueue = DispatchQueue(label: "slipway.db.reader")
    private let writer: ConfinedConnection
    private let reader: ConfinedConnection
    private let state = Mutex(WriterState())
    private let counters = Mutex(Statistics())

    /// How many transactions and writes the writer committed: writes/commits is the group-commit factor.
    public struct Statistics: Sendable, Equatable {
        public var commits = 0
        public var writes = 0
        public var failedCommits = 0
    }

    public var statistics: Statistics { counters.withLock { $0 } }

    private struct WriterState {
        var pending: [WriteItem] = []
        var draining = false
        var closed = false
    }

    fileprivate struct WriteItem: Sendable {
        let durable: Bool
        let perform: @Sendable (SQLiteConnection) throws -> Void
        let finish: @Sendable (DatabaseError?) -> Void
    }

    /// The writer's current `synchronous` level; only touched on `writerQueue`.
    private let writerSyncFull = Mutex(true)

    /// Opens or creates the database at `path`, applies migrations, and sets WAL + `synchronous=FULL`.
    public init(path: String, migrations: [Migration] = Migration.all, busyTimeoutMilliseconds: Int32 = 5_000) throws {
        self.path = path
        let writer = try SQLiteConnection(path: path, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
        try writer.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
        try Migration.apply(migrations, to: writer)
        let reader = try SQLiteConnection(path: path)
        try reader.execute("PRAGMA query_only=ON;")
        self.writer = ConfinedConnection(writer)
        self.reader = ConfinedConnection(reader)
    }

    /// Runs `body` inside the next group-committed transaction and returns its result once committed.
    ///
    /// If `body` throws, only its own changes are rolled back (it runs in a savepoint); if the
    /// commit itself fails, every write in the batch fails with `.unavailable`.
    ///
    /// `durable: false` is for writes derived from data that is already durable (the matcher's
    /// traces, runs and cursor, all re-derived from the event log if lost): a transaction made only
    /// of such writes commits with `synchronous=NORMAL` — atomic, but without its own fsync. The
    /// next durable commit (a delivery, a builder claim) fsyncs the WAL and with it everything
    /// before it, so nothing derived is ever acted on before it is on disk. A batch with any
    /// durable write is committed with `synchronous=FULL`.
    public func write<T: Sendable>(durable: Bool = true, _ body: @escaping @Sendable (SQLiteConnection) throws -> T)
        async throws(DatabaseError) -> T
    {
        let result: Result<T, DatabaseError> = await withCheckedContinuation { continuation in
            write(durable: durable, body) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// The same write, for callers outside Swift concurrency (the webhook listener's event loop):
    /// `completion` runs on the writer thread once the batch holding it has committed (or failed).
    public func write<T: Sendable>(
        durable: Bool = true, _ body: @escaping @Sendable (SQLiteConnection) throws -> T,
        completion: @escaping @Sendable (Result<T, DatabaseError>) -> Void
    ) {
        let box = ResultBox<T>()
        enqueue(
            WriteItem(
                durable: durable,
                perform: { db in box.value = try body(db) },
                finish: { error in completion(error.map { .failure($0) } ?? .success(box.value!)) }))
    }

    /// Runs a read on the reader connection, off the cooperative pool.
    public func read<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        let reader = self.reader
        return try await withCheckedThrowingContinuation { continuation in
            readerQueue.async {
                continuation.resume(with: Result { try body(reader.connection) })
            }
        }
    }

    /// Stops accepting writes, waits for the writes already accepted to commit, and returns.
    public func close() async {
        state.withLock { $0.closed = true }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            // The queue is serial: this runs after any drain in progress.
            writerQueue.async { continuation.resume() }
        }
    }

    private func enqueue(_ item: WriteItem) {
        let start: Bool? = state.withLock { state in
            if state.closed { return nil }
            state.pending.append(item)
            if state.draining { return false }
            state.draining = true
            return true
        }
        switch start {
        case nil: item.finish(DatabaseError(.closed, "the event log is closed (shutting down)"))
        case true?: writerQueue.async { self.drain() }
        case false?: break
        }
    }

    /// Commits batches until nothing is pending. Runs only on `writerQueue`.
    private func drain() {
        let db = writer.connection
        while true {
            let batch: [WriteItem] = state.withLock { state in
                if state.pending.isEmpty {
                    state.draining = false
                    return []
                }
                let n = min(state.pending.count, Self.maxBatch)
                let batch = Array(state.pending.prefix(n))
                state.pending.removeFirst(n)
                return batch
            }
            if batch.isEmpty { return }
            commit(batch, on: db)
        }
    }

    private func commit(_ batch: [WriteItem], on db: SQLiteConnection) {
        var outcomes = [DatabaseError?](repeating: nil, count: batch.count)
        do {
            let full = batch.contains { $0.durable }
            if writerSyncFull.withLock({ $0 }) != full {
                try db.execute(full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL")
                writerSyncFull.withLock { $0 = full }
            }
            try db.execute("BEGIN IMMEDIATE")
            for (i, item) in batch.enumerated() {
                try db.prepare("SAVEPOINT item").run()
                do {
                    try item.perform(db)
                    try db.prepare("RELEASE item").run()
                } catch let error as SQLiteError where error.isStorageFailure {
                    throw error
                } catch {
                    try db.execute("ROLLBACK TO item; RELEASE item")
                    outcomes[i] = (error as? SQLiteError).map(DatabaseError.init) ?? DatabaseError(.statement, "\(error)")
                }
            }
            try db.prepare("COMMIT").run()
        } catch {
            try? db.execute("ROLLBACK")
            let failure = (error as? SQLiteError).map(DatabaseError.init) ?? DatabaseError(.unavailable, "\(error)")
            let unavailable = DatabaseError(.unavailable, "the event log cannot be written: \(failure.message)")
            counters.withLock { $0.failedCommits += 1 }
            for item in batch { item.finish(unavailable) }
            return
        }
        counters.withLock {
            $0.commits += 1
            $0.writes += batch.count
        }
        for (item, outcome) in zip(batch, outcomes) { item.finish(outcome) }
    }
}

/// A connection used only from one serial queue.
private final class ConfinedConnection: @unchecked Sendable {
    let connection: SQLiteConnection
    init(_ connection: SQLiteConnection) { self.connection = connection }
}

/// Carries a write's result from the writer queue to the continuation.
private final class ResultBox<T>: @unchecked Sendable {
    var value: T?
}
