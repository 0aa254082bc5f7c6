/// Every event after a consumer's persisted cursor, in order, as batches; waits for new commits.
///
/// The log is the queue: a consumer reads a batch from its cursor, does its work, then calls
/// `EventLog.saveCursor` with the batch's last seq. After a crash it resumes from the last saved
/// position, so an event is seen at least once; consumers make their work idempotent per seq.
public struct EventFeed: AsyncSequence, Sendable {
    public typealias Element = [StoredEvent]

    let log: EventLog
    let cursorName: String
    let batchSize: Int

    public func makeAsyncIterator() -> Iterator {
        Iterator(log: log, cursorName: cursorName, batchSize: batchSize)
    }

    public struct Iterator: AsyncIteratorProtocol {
        let log: EventLog
        let cursorName: String
        let batchSize: Int
        var position: Int64?

        public mutating func next() async throws -> [StoredEvent]? {
            if position == nil { position = try await log.cursor(cursorName) }
            while true {
                try Task.checkCancellation()
                let batch = try await log.events(after: position!, limit: batchSize)
                if let last = batch.last {
                    position = last.seq
                    return batch
                }
                await log.waitForCommit(after: position!)
            }
        }
    }
}
