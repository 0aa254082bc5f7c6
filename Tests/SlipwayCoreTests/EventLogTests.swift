import Foundation
import Synchronization
import Testing

@testable import SlipwayCore

@Suite struct EventLogTests {
    let dir = TempDirectory()
    var path: String { dir.path + "/slipway.sqlite" }

    /// A delivery; its body is distinct per id unless given (a body already stored is a duplicate).
    static func delivery(_ id: String, hook: String = "1", body: String? = nil) -> Delivery {
        let body = body ?? #"{"ref":"refs/heads/main","delivery":"\#(id)"}"#
        return Delivery(deliveryID: id, hookID: hook, eventType: "push", signature: "sha256:/s", headersJSON: "{}", body: Array(body.utf8))
    }

    @Test func appendStoresExactBytesAndDedupes() async throws {
        let log = try EventLog(database: Database(path: path))
        let body = "{\"a\":\"\u{e9}\"}\r\n"
        #expect(try await log.append(Self.delivery("d1", body: body)) == .appended(1))
        #expect(try await log.append(Self.delivery("d2")) == .appended(2))
        #expect(try await log.append(Self.delivery("d1", body: "{}")) == .duplicate(1))
        // The same delivery id from another hook is another delivery.
        #expect(try await log.append(Self.delivery("d1", hook: "2", body: #"{"n":3}"#)) == .appended(3))
        // A body already stored is a duplicate whatever the (unsigned) ids say: a captured
        // delivery re-posted under a fresh delivery id, or one push sent by two hooks.
        #expect(try await log.append(Self.delivery("d9", hook: "7", body: #"{"ref":"refs/heads/main","delivery":"d2"}"#)) == .duplicate(2))
        let stored = try #require(try await log.event(seq: 1))
        #expect(stored.body == Array(body.utf8))
        #expect(stored.deliveryID == "d1")
        #expect(stored.signature == "sha256:/s")
        #expect(log.lastCommittedSeq == 3)
    }

    @Test func eventsAreAppendOnly() async throws {
        let log = try EventLog(database: Database(path: path))
        _ = try await log.append(Self.delivery("d1"))
        let other = try SQLiteConnection(path: path)
        for sql in ["UPDATE events SET event_type = 'x'", "DELETE FROM events"] {
            #expect {
                try other.execute(sql)
            } throws: { error in
                (error as? SQLiteError)?.message == "events are append-only"
            }
        }
        #expect(try await log.event(seq: 1)?.eventType == "push")
    }

    @Test func concurrentAppendsShareCommits() async throws {
        let database = try Database(path: path)
        let log = try EventLog(database: database)
        let outcomes = try await withThrowingTaskGroup(of: AppendOutcome.self) { group in
            for i in 0..<500 { group.addTask { try await log.append(Self.delivery("d\(i)")) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(outcomes.map(\.seq)) == Set(1...500))
        let stats = database.statistics
        #expect(stats.writes == 500)
        #expect(stats.commits < 500, "concurrent appends are group-committed (\(stats.commits) commits)")
    }

    @Test func feedResumesFromTheSavedCursor() async throws {
        let log = try EventLog(database: Database(path: path))
        for i in 1...5 { _ = try await log.append(Self.delivery("d\(i)")) }
        var iterator = log.feed(cursor: "matcher", batchSize: 3).makeAsyncIterator()
        let first = try #require(try await iterator.next())
        #expect(first.map(\.seq) == [1, 2, 3])
        try await log.saveCursor("matcher", seq: 3)

        // A new consumer (as after a restart) starts after the saved cursor.
        var resumed = log.feed(cursor: "matcher").makeAsyncIterator()
        #expect(try await resumed.next()?.map(\.seq) == [4, 5])

        // And waits for the next commit rather than returning nothing.
        async let next = resumed.next()
        for _ in 0..<500 where log.waitingConsumers == 0 { try await Task.sleep(for: .milliseconds(2)) }
        #expect(log.waitingConsumers == 1, "the feed parks until the next commit")
        _ = try await log.append(Self.delivery("d6"))
        #expect(try await next?.map(\.deliveryID) == ["d6"])
    }

    @Test func reopeningKeepsEventsAndSchema() async throws {
        do {
            let log = try EventLog(database: Database(path: path))
            _ = try await log.append(Self.delivery("d1"))
        }
        let database = try Database(path: path)
        let log = try EventLog(database: database)
        #expect(log.lastCommittedSeq == 1)
        #expect(try await log.append(Self.delivery("d1")) == .duplicate(1))
        let version = try await database.read { try $0.prepare("PRAGMA user_version").rows { $0.int(0) } }
        #expect(version == [Int64(Migration.all.last!.version)])
    }

    /// When the disk refuses the write, the caller gets `.unavailable` (→ 503) and nothing is half-stored.
    @Test func unwritableLogFailsTheAppend() async throws {
        let database = try Database(path: path, busyTimeoutMilliseconds: 100)
        let log = try EventLog(database: database)
        let blocker = try SQLiteConnection(path: path)
        try blocker.execute("BEGIN EXCLUSIVE")
        await #expect {
            _ = try await log.append(Self.delivery("d1"))
        } throws: { error in
            (error as? DatabaseError)?.code == .unavailable
        }
        await #expect(throws: DatabaseError.self) { try await log.checkWritable() }
        try blocker.execute("ROLLBACK")
        #expect(try await log.append(Self.delivery("d1")) == .appended(1))
        try await log.checkWritable()
    }

    /// Holds the writer thread until `release` is called: writes queued meanwhile commit as one group.
    static func holdWriter(_ database: Database) -> @Sendable () -> Void {
        let started = DispatchSemaphore(value: 0)
        let gate = DispatchSemaphore(value: 0)
        database.write({ _ in
            started.signal()
            gate.wait()
        }, completion: { (_: Result<Void, DatabaseError>) in })
        started.wait()
        return { gate.signal() }
    }

    /// One "stored" announcement per group commit, with the group's appended deliveries in
    /// order (not its duplicates), made before any of their callers hears the outcome.
    @Test func aGroupCommitIsAnnouncedOnceBeforeAnyCallerHears() async throws {
        let database = try Database(path: path)
        let log = try EventLog(database: database)
        let announced = Mutex<[[StoredDeliveries.Entry]]>([])
        let stored = StoredDeliveries(database: database) { entries in announced.withLock { $0.append(entries) } }
        #expect(try await log.append(Self.delivery("d0"), stored: stored) == .appended(1))
        // Appends without `stored` (schedules, base images) are not its to announce.
        #expect(try await log.append(Self.delivery("other")) == .appended(2))
        #expect(announced.withLock { $0.map { $0.map(\.deliveryID) } } == [["d0"]])

        let release = Self.holdWriter(database)
        let heard = Mutex<[String: Int]>([:])
        let deliveries = [
            Self.delivery("d1"), Self.delivery("d2"),
            Self.delivery("d2-again", body: #"{"ref":"refs/heads/main","delivery":"d2"}"#),  // a duplicate body
            Self.delivery("d3"),
        ]
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let left = Mutex(deliveries.count)
            for delivery in deliveries {
                log.append(delivery, stored: stored) { _ in
                    heard.withLock { $0[delivery.deliveryID] = announced.withLock { $0.count } }
                    if left.withLock({ $0 -= 1; return $0 }) == 0 { done.resume() }
                }
            }
            release()
        }
        let groups = announced.withLock { $0 }
        #expect(groups.count == 2)
        #expect(groups.last?.map(\.deliveryID) == ["d1", "d2", "d3"])
        #expect(groups.last?.map(\.seq) == [3, 4, 5])
        #expect(groups.last?.first == StoredDeliveries.Entry(seq: 3, deliveryID: "d1", eventType: "push", signature: "sha256:/s"))
        #expect(heard.withLock { $0 } == ["d1": 2, "d2": 2, "d2-again": 2, "d3": 2], "every caller heard after the announcement")
    }

    /// A group that rolls back (the disk refused a write in it) announces nothing; its deliveries
    /// are not stored and their callers get `.unavailable`.
    @Test func aGroupThatRollsBackAnnouncesNothing() async throws {
        let database = try Database(path: path)
        let log = try EventLog(database: database)
        let announced = Mutex<[[StoredDeliveries.Entry]]>([])
        let stored = StoredDeliveries(database: database) { entries in announced.withLock { $0.append(entries) } }
        let release = Self.holdWriter(database)
        let outcome = Mutex<Result<AppendOutcome, DatabaseError>?>(nil)
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            log.append(Self.delivery("d1"), stored: stored) { result in outcome.withLock { $0 = result } }
            database.write({ _ in throw SQLiteError(code: 10 /* SQLITE_IOERR */, message: "disk I/O error") }, completion: { (_: Result<Void, DatabaseError>) in done.resume() })
            release()
        }
        guard case .failure(let error)? = outcome.withLock({ $0 }) else {
            Issue.record("the append in the failed group succeeded")
            return
        }
        #expect(error.code == .unavailable)
        #expect(announced.withLock { $0.isEmpty })
        #expect(try await log.append(Self.delivery("d2"), stored: stored) == .appended(1))
        #expect(announced.withLock { $0.map { $0.map(\.deliveryID) } } == [["d2"]])
    }

    /// A group longer than `maxPerAnnouncement` is announced in parts, all before its callers hear.
    @Test func aLongGroupIsAnnouncedInParts() async throws {
        let database = try Database(path: path)
        let log = try EventLog(database: database)
        let announced = Mutex<[Int]>([])
        let stored = StoredDeliveries(database: database) { entries in announced.withLock { $0.append(entries.count) } }
        let count = StoredDeliveries.maxPerAnnouncement * 2 + 5
        let release = Self.holdWriter(database)
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let left = Mutex(count)
            for n in 0..<count {
                log.append(Self.delivery("d\(n)"), stored: stored) { _ in
                    if left.withLock({ $0 -= 1; return $0 }) == 0 { done.resume() }
                }
            }
            release()
        }
        let parts = StoredDeliveries.maxPerAnnouncement
        #expect(announced.withLock { $0 } == [parts, parts, 5])
    }

    @Test func closedLogRefusesNewWrites() async throws {
        let database = try Database(path: path)
        let log = try EventLog(database: database)
        await database.close()
        await #expect {
            _ = try await log.append(Self.delivery("d1"))
        } throws: { error in
            (error as? DatabaseError)?.code == .closed
        }
    }

    /// Appends `waves` × `width` deliveries with ~2 KB bodies, `width` at a time (each wave about
    /// one group commit), and returns the WAL's size in frames after each wave.
    static func appendWaves(_ log: EventLog, _ database: Database, from start: Int, waves: Int, width: Int = 50)
        async throws -> [Int32]
    {
        let filler = String(repeating: "x", count: 2_000)
        var frames: [Int32] = []
        for wave in 0..<waves {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<width {
                    let id = "w\(start + wave * width + i)"
                    group.addTask { _ = try await log.append(Self.delivery(id, body: #"{"id":"\#(id)","f":"\#(filler)"}"#)) }
                }
                try await group.waitForAll()
            }
            frames.append(database.walFrames)
        }
        return frames
    }

    /// The checkpointer copies the WAL beside the writer and the writer finishes the tail, so under
    /// steady writes the WAL starts over again and again instead of growing with every commit.
    @Test func checkpointsKeepTheWALSmallUnderSteadyWrites() async throws {
        let database = try Database(path: path, checkpointFrames: 100)
        let log = try EventLog(database: database)
        let frames = try await Self.appendWaves(log, database, from: 0, waves: 60)

        let stats = database.statistics
        #expect(stats.checkpoints > 0, "the checkpointer ran")
        #expect(stats.writerCheckpoints > 0, "the writer checkpointed the tails")
        let restarts = zip(frames, frames.dropFirst()).filter { $1 < $0 }.count
        #expect(restarts >= 3, "the WAL started over (frames after each wave: \(frames))")
        // Without checkpoints the WAL would hold every frame written: over 3,000 here.
        #expect(frames.max()! < 800, "frames after each wave: \(frames)")
        let walBytes = try #require(try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int)
        #expect(walBytes < 800 * 4_120, "the WAL file stays small: \(walBytes) bytes")

        await database.close()
        let reopened = try EventLog(database: Database(path: path))
        #expect(reopened.lastCommittedSeq == 3_000)
        #expect(try await reopened.event(seq: 2_999)?.deliveryID != nil)
    }

    /// A reader on an old snapshot holds the WAL's frames, as with SQLite's own checkpoint: the WAL
    /// grows meanwhile without the checkpointer spinning, and starts over once the reader is done.
    @Test func aReaderOnAnOldSnapshotHoldsTheWALUntilItEnds() async throws {
        let database = try Database(path: path, checkpointFrames: 100)
        let log = try EventLog(database: database)
        _ = try await Self.appendWaves(log, database, from: 0, waves: 2)
        let reader = try SQLiteConnection(path: path)
        try reader.execute("BEGIN")
        #expect(try reader.prepare("SELECT count(*) FROM events").rows { $0.int(0) } == [100])

        let before = database.statistics
        let held = try await Self.appendWaves(log, database, from: 100, waves: 30)
        #expect(held == held.sorted() && held.last! > 1_000, "no restart while the snapshot is held: \(held)")
        // Not a checkpoint per commit: one more only after another `checkpointFrames` frames.
        let attempts = database.statistics.checkpoints - before.checkpoints
        #expect(attempts <= Int(held.last! - held.first!) / 100 + 3, "\(attempts) checkpoints while held: \(held)")

        try reader.execute("COMMIT")
        let after = try await Self.appendWaves(log, database, from: 1_600, waves: 30)
        #expect(after.contains { $0 < held.last! / 2 }, "the WAL started over: \(after)")
        #expect(log.lastCommittedSeq == 3_100)
    }
}
