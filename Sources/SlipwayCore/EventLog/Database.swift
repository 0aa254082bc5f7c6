import CSQLite3
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
/// All SQLite calls run on dedicated dispatch queues, never on the cooperative pool (a lone
/// delivery's commit may run on its event loop's thread, inside the writer's queue: `write`'s
/// `inlineWhenIdle`).
///
/// **Checkpoints run beside the writer, not in it.** SQLite's automatic checkpoint copies the
/// WAL back into the database file inside the commit that crossed 1,000 frames, and the writer
/// (every caller waiting for an fsync) stalls for the copy and the database file's fsync. Here the
/// writer only counts frames (`sqlite3_wal_hook`); past `checkpointFrames` (1,000) a checkpointer
/// connection on its own queue copies what it can (`PASSIVE`: it never blocks the writer or a
/// reader), repeating while the writer keeps appending, until the frames left are few. The writer
/// then checkpoints that short tail itself between two transactions, so the next transaction
/// starts the WAL over (a WAL only restarts when it is fully copied, which a checkpoint running
/// while the writer appends never achieves alone). The checkpointer stops after 8 passes, so a
/// slow disk leaves the writer a longer tail, never an unbounded WAL; a reader on an old snapshot
/// holds frames back until it ends (as with SQLite's own checkpoint).
public final class Database: Sendable {
    /// The largest number of writes that share one transaction.
    public static let maxBatch = 1024

    /// WAL frames (pages) the writer appends before the checkpointer starts copying them back:
    /// SQLite's own automatic-checkpoint size, so the WAL file does not grow. (2,000 gave ~7 % more
    /// deliveries/s at 32 connections and a worse p99: Benchmarks/README.md.)
    public static let defaultCheckpointFrames: Int32 = 1000

    /// This database's `checkpointFrames`, and the frames the checkpointer leaves for the writer's
    /// own checkpoint (the tail, a twentieth).
    let checkpointFrames: Int32
    private var checkpointTail: Int32 { max(checkpointFrames / 20, 1) }

    public let path: String
    private let writerQueue = DispatchQueue(label: "slipway.db.writer")
    private let readerQueue = DispatchQueue(label: "slipway.db.reader")
    private let checkpointQueue = DispatchQueue(label: "slipway.db.checkpointer")
    private let writer: ConfinedConnection
    private let reader: ConfinedConnection
    private let checkpointer: ConfinedConnection
    private let state = Mutex(WriterState())
    private let counters = Mutex(Statistics())
    private let wal: WALProgress

    /// The WAL's size in frames after the last commit.
    var walFrames: Int32 { wal.frames }

    /// How many transactions and writes the writer committed: writes/commits is the group-commit factor.
    public struct Statistics: Sendable, Equatable {
        public var commits = 0
        public var writes = 0
        public var failedCommits = 0
        /// Checkpoint passes the checkpointer ran, and the tails the writer checkpointed itself.
        public var checkpoints = 0
        public var writerCheckpoints = 0
        /// Commits a caller ran on its own thread (`write(inlineWhenIdle:)`), out of `commits`.
        public var inlineCommits = 0
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

    /// Called on the writer's queue when a batch's transaction has ended (true: committed, false:
    /// rolled back), before any of its writes' completions run.
    public typealias BatchObserver = @Sendable (_ committed: Bool) -> Void
    private let batchObservers = Mutex<[BatchObserver]>([])

    /// Adds `observer`, called on the writer's queue after every batch's `COMMIT` (true) or
    /// `ROLLBACK` (false) and before that batch's completions: what it does (a log line for the
    /// batch) happens before any caller of a write in the batch hears the outcome.
    public func observeBatches(_ observer: @escaping BatchObserver) {
        batchObservers.withLock { $0.append(observer) }
    }

    private func batchEnded(committed: Bool) {
        for observer in batchObservers.withLock({ $0 }) { observer(committed) }
    }

    /// Opens or creates the database at `path`, applies migrations, and sets WAL + `synchronous=FULL`.
    public init(
        path: String, migrations: [Migration] = Migration.all, busyTimeoutMilliseconds: Int32 = 5_000,
        checkpointFrames: Int32 = Database.defaultCheckpointFrames
    ) throws {
        self.path = path
        self.checkpointFrames = checkpointFrames
        let writer = try SQLiteConnection(path: path, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
        try writer.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
        try Migration.apply(migrations, to: writer)
        let reader = try SQLiteConnection(path: path)
        try reader.execute("PRAGMA query_only=ON;")
        // synchronous=FULL: a checkpoint fsyncs the database file before the WAL may start over.
        let checkpointer = try SQLiteConnection(path: path)
        try checkpointer.execute("PRAGMA synchronous=FULL;")
        self.writer = ConfinedConnection(writer)
        self.reader = ConfinedConnection(reader)
        self.checkpointer = ConfinedConnection(checkpointer)
        // Replaces SQLite's automatic checkpoint (itself a WAL hook) on the writer.
        wal = WALProgress()
        sqlite3_wal_hook(writer.handle, walHook, Unmanaged.passUnretained(wal).toOpaque())
    }

    deinit {
        sqlite3_wal_hook(writer.connection.handle, nil, nil)
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
    ///
    /// `inlineWhenIdle`: when no transaction is being committed and none is waiting, the calling
    /// thread commits this write itself (and runs `completion`) before returning: on a quiet
    /// server a delivery costs no hop to the writer thread and back. Writes that arrive meanwhile
    /// wait as they would for the writer thread and are handed to it afterwards.
    public func write<T: Sendable>(
        durable: Bool = true, inlineWhenIdle: Bool = false, _ body: @escaping @Sendable (SQLiteConnection) throws -> T,
        completion: @escaping @Sendable (Result<T, DatabaseError>) -> Void
    ) {
        let box = ResultBox<T>()
        enqueue(
            WriteItem(
                durable: durable,
                perform: { db in box.value = try body(db) },
                finish: { error in completion(error.map { .failure($0) } ?? .success(box.value!)) }),
            inlineWhenIdle: inlineWhenIdle)
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

    /// Stops accepting writes, waits for the writes already accepted to commit (and a checkpoint
    /// in progress to end), and returns.
    public func close() async {
        state.withLock { $0.closed = true }
        // The queue is serial: a block on it runs after any drain in progress. A drain asked for
        // just before `closed` was set (or handed over by an inline commit) may be queued after
        // that block, so wait until nothing is draining: no write accepted before is left behind.
        repeat {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                writerQueue.async { continuation.resume() }
            }
        } while state.withLock({ $0.draining })
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            checkpointQueue.async { continuation.resume() }
        }
    }

    private enum Start { case closed, queued, drain, inline }

    private func enqueue(_ item: WriteItem, inlineWhenIdle: Bool = false) {
        let start: Start = state.withLock { state in
            if state.closed { return .closed }
            if inlineWhenIdle && !state.draining && state.pending.isEmpty {
                state.draining = true
                return .inline
            }
            state.pending.append(item)
            if state.draining { return .queued }
            state.draining = true
            return .drain
        }
        switch start {
        case .closed: item.finish(DatabaseError(.closed, "the event log is closed (shutting down)"))
        case .drain: writerQueue.async { self.drain() }
        case .queued: break
        case .inline:
            // On the queue (so nothing else runs on the writer connection), on this thread.
            writerQueue.sync { commit([item], on: writer.connection, inline: true) }
            let more = state.withLock { state in
                if state.pending.isEmpty { state.draining = false }
                return !state.pending.isEmpty
            }
            if more { writerQueue.async { self.drain() } }
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

    private func commit(_ batch: [WriteItem], on db: SQLiteConnection, inline: Bool = false) {
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
            batchEnded(committed: false)
            for item in batch { item.finish(unavailable) }
            return
        }
        counters.withLock {
            $0.commits += 1
            $0.writes += batch.count
            if inline { $0.inlineCommits += 1 }
        }
        batchEnded(committed: true)
        for (item, outcome) in zip(batch, outcomes) { item.finish(outcome) }
        checkpointAfterCommit(on: db, deferred: inline)
    }

    /// After a commit (on the writer queue, the callers already answered): starts the
    /// checkpointer, or checkpoints the tail it left.
    /// `deferred`: the commit ran on a caller's thread (an event loop), which must not wait for
    /// the tail's copy: the writer thread does it next.
    private func checkpointAfterCommit(on db: SQLiteConnection, deferred: Bool = false) {
        let action = wal.afterCommit(threshold: checkpointFrames)
        switch action {
        case .none: return
        case .background: checkpointQueue.async { self.checkpointInBackground() }
        case .writer where deferred: writerQueue.async { self.checkpointWALTail(on: self.writer.connection) }
        case .writer: checkpointWALTail(on: db)
        }
    }

    /// The writer's checkpoint of the tail the checkpointer left, between two transactions.
    private func checkpointWALTail(on db: SQLiteConnection) {
        var log: Int32 = 0
        var copied: Int32 = 0
        let rc = sqlite3_wal_checkpoint_v2(db.handle, nil, SQLITE_CHECKPOINT_PASSIVE, &log, &copied)
        wal.copied(rc == SQLITE_OK ? copied : nil, finishedBackground: false)
        counters.withLock { $0.writerCheckpoints += 1 }
    }

    /// Copies WAL frames into the database on the checkpointer connection until at most
    /// `checkpointTail` frames are left (or it stops gaining), then leaves the tail to the writer.
    private func checkpointInBackground() {
        let db = checkpointer.connection
        var copiedUpTo: Int32? = nil
        for _ in 0..<8 {
            var log: Int32 = 0
            var copied: Int32 = 0
            let rc = sqlite3_wal_checkpoint_v2(db.handle, nil, SQLITE_CHECKPOINT_PASSIVE, &log, &copied)
            counters.withLock { $0.checkpoints += 1 }
            guard rc == SQLITE_OK else { break }
            let gained = copied > (copiedUpTo ?? -1)
            copiedUpTo = copied
            // A reader on an older snapshot holds frames back: stop instead of spinning.
            if !gained || copied < log || wal.frames - copied <= checkpointTail { break }
        }
        wal.copied(copiedUpTo, finishedBackground: true)
    }
}

/// What the writer knows of the WAL: its size in frames after the last commit (from the WAL
/// hook, on the writer thread) and how far checkpoints have copied it.
private final class WALProgress: Sendable {
    enum Action { case none, background, writer }

    private struct State {
        var frames: Int32 = 0
        var copied: Int32 = 0
        var background = false
        var tailPending = false
        /// The WAL's size when a checkpoint last could copy nothing new (a reader on an older
        /// snapshot holds the frames): the next one waits for `threshold` frames more.
        var stalledAt: Int32? = nil
    }

    private let state = Mutex(State())

    var frames: Int32 { state.withLock { $0.frames } }

    /// From the WAL hook: the WAL now holds `frames` frames.
    func committed(frames: Int32) {
        state.withLock { state in
            // Fewer frames than were copied: the WAL started over.
            if frames < state.copied || frames < state.stalledAt ?? 0 {
                state.copied = 0
                state.stalledAt = nil
            }
            state.frames = frames
        }
    }

    func afterCommit(threshold: Int32) -> Action {
        state.withLock { state in
            let behind = state.frames - state.copied
            if state.tailPending {
                state.tailPending = false
                return .writer
            }
            if state.background { return .none }
            if behind >= threshold, state.frames >= (state.stalledAt ?? 0) + threshold {
                state.background = true
                return .background
            }
            return .none
        }
    }

    /// A checkpoint copied the WAL up to frame `copied` (nil: it failed).
    func copied(_ copied: Int32?, finishedBackground: Bool) {
        state.withLock { state in
            let gained = copied.map { $0 > state.copied } ?? false
            if let copied, copied <= state.frames { state.copied = max(state.copied, copied) }
            if finishedBackground {
                state.background = false
                state.tailPending = gained
                state.stalledAt = gained ? nil : state.frames
            }
        }
    }
}

/// SQLite calls it on the writer thread after each commit with the WAL's size in frames.
private func walHook(_ context: UnsafeMutableRawPointer?, _ db: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ frames: Int32)
    -> Int32
{
    if let context { Unmanaged<WALProgress>.fromOpaque(context).takeUnretainedValue().committed(frames: frames) }
    return SQLITE_OK
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
