import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@testable import SlipwayCore

/// `Database.write(inlineWhenIdle:)`: a caller (the webhook's event loop) commits its own write
/// when the writer is idle, and queues it like any other write when it is not.
@Suite struct InlineCommitTests {
    let dir = TempDirectory()
    var path: String { dir.path + "/slipway.sqlite" }

    static func insert(_ n: Int) -> @Sendable (SQLiteConnection) throws -> Void {
        { db in try db.prepare("INSERT INTO t (n) VALUES (?)").bind([.integer(Int64(n))]).run() }
    }

    /// A database with a table `t` (made through the queued path: one commit).
    func database(checkpointFrames: Int32 = Database.defaultCheckpointFrames) async throws -> Database {
        let database = try Database(path: path, checkpointFrames: checkpointFrames)
        try await database.write { db in try db.execute("CREATE TABLE t (n INTEGER)") }
        return database
    }

    /// Which thread ran a completion, and whether it had run when `write` returned.
    final class Seen: Sendable {
        let thread = Mutex<pthread_t?>(nil)
        let done = Mutex(false)
        func record() {
            thread.withLock { $0 = pthread_self() }
            done.withLock { $0 = true }
        }
    }

    @Test func anIdleWriterLetsTheCallerCommitItself() async throws {
        let database = try await database()
        let seen = Seen()
        database.write(inlineWhenIdle: true, Self.insert(2), completion: { result in
            if case .success = result { seen.record() }
        })
        #expect(seen.done.withLock { $0 }, "committed before write returned")
        #expect(seen.thread.withLock { $0 }.map { pthread_equal($0, pthread_self()) != 0 } == true, "on the caller's thread")
        let count = try await database.read { db in try db.prepare("SELECT count(*) FROM t WHERE n = 2").rows { $0.int(0) }.first }
        #expect(count == 1, "and it is committed")
        #expect(database.statistics.commits == 2, "the table, then the write")
        #expect(database.statistics.inlineCommits == 1)
    }

    @Test func aBusyWriterQueuesTheWrite() async throws {
        let database = try await database()
        let release = EventLogTests.holdWriter(database)
        let seen = Seen()
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            database.write(inlineWhenIdle: true, Self.insert(2), completion: { _ in
                seen.record()
                done.resume()
            })
            #expect(!seen.done.withLock { $0 }, "queued behind the transaction in progress")
            release()
        }
        #expect(seen.thread.withLock { $0 }.map { pthread_equal($0, pthread_self()) != 0 } == false)
    }

    /// Writes that arrive while a caller commits its own are committed by the writer thread after it.
    @Test func writesArrivingDuringAnInlineCommitAreHandedToTheWriter() async throws {
        let database = try await database()
        let started = DispatchSemaphore(value: 0)
        let gate = DispatchSemaphore(value: 0)
        let inline = Seen()
        let caller = Mutex<pthread_t?>(nil)
        let thread = Thread {
            caller.withLock { $0 = pthread_self() }
            database.write(inlineWhenIdle: true, { db in
                started.signal()
                gate.wait()
                try Self.insert(1)(db)
            }, completion: { _ in inline.record() })
        }
        thread.start()
        started.wait()
        let completed = Mutex(0)
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            for n in 2...4 {
                // Also inline-when-idle: the writer is busy (with the caller's commit), so they queue.
                database.write(inlineWhenIdle: true, Self.insert(n), completion: { result in
                    if case .success = result, completed.withLock({ $0 += 1; return $0 }) == 3 { done.resume() }
                })
            }
            #expect(completed.withLock { $0 } == 0)
            gate.signal()
        }
        let ran = inline.thread.withLock { $0 }
        #expect(ran != nil && caller.withLock { $0 }.map { pthread_equal($0, ran!) != 0 } == true, "the first ran on its caller's thread")
        let count = try await database.read { db in try db.prepare("SELECT count(*) FROM t").rows { $0.int(0) }.first }
        #expect(count == 4)
        #expect(database.statistics.commits == 3, "the table, the inline write, then the three that waited in one commit")
        #expect(database.statistics.inlineCommits == 1)
    }

    /// `close()` returns only after every write accepted before it committed, including one that
    /// waited behind an inline commit and was handed to the writer thread after it.
    @Test func closeWaitsForAWriteHandedOverByAnInlineCommit() async throws {
        let database = try await database()
        let started = DispatchSemaphore(value: 0)
        let gate = DispatchSemaphore(value: 0)
        let thread = Thread {
            database.write(inlineWhenIdle: true, { db in
                started.signal()
                gate.wait()
                try Self.insert(1)(db)
            }, completion: { _ in })
        }
        thread.start()
        started.wait()
        let queued = Seen()
        database.write(Self.insert(2), completion: { result in
            if case .success = result { queued.record() }
        })
        let closing = Task { await database.close() }
        try await Task.sleep(for: .milliseconds(50))  // close() is waiting on the writer's queue
        gate.signal()
        await closing.value
        #expect(queued.done.withLock { $0 }, "the queued write committed before close() returned")
    }

    /// A caller never checkpoints the WAL's tail itself (that waits for a copy and an fsync of the
    /// database file): the writer thread does it next, and the WAL still starts over.
    @Test func inlineCommitsLeaveTheTailCheckpointToTheWriter() async throws {
        let database = try Database(path: path, checkpointFrames: 50)
        let log = try EventLog(database: database)
        var largest: Int32 = 0
        for n in 0..<600 {
            let body = #"{"n":\#(n),"pad":"\#(String(repeating: "x", count: 2000))"}"#
            let delivery = Delivery(
                deliveryID: "d\(n)", hookID: "1", eventType: "push", signature: "sha256:/s", headersJSON: "{}", body: Array(body.utf8))
            let seen = Seen()
            log.append(delivery, inlineWhenIdle: true) { result in
                if case .success(.appended) = result { seen.record() }
            }
            if !seen.done.withLock({ $0 }) {
                // The writer thread was busy (a deferred tail checkpoint): wait for the queued append.
                while !seen.done.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(1)) }
            }
            largest = max(largest, database.walFrames)
        }
        let stats = database.statistics
        #expect(stats.writerCheckpoints >= 3, "\(stats)")
        #expect(largest < 400, "the WAL restarted: at most \(largest) frames")
        #expect(log.lastCommittedSeq == 600)
    }
}
