import Synchronization

/// The deliveries one group commit stored, announced together: one call per committed batch
/// (at most `maxPerAnnouncement` deliveries each), on the thread that committed it (the writer
/// thread, or an event loop committing a lone delivery inline), after `COMMIT` and before any of
/// the batch's callers is answered — a delivery's "stored" line is written before its 2xx.
///
/// A batch that rolls back announces nothing (its callers get 503s, which they log themselves).
/// Under load a group holds 10–30 deliveries, so the log (and journald, which spends ~24 µs per
/// entry) gets one entry per `fdatasync` instead of one per delivery.
public final class StoredDeliveries: Sendable {
    public struct Entry: Sendable, Equatable {
        public let seq: Int64
        public let deliveryID: String
        public let eventType: String
        public let signature: String
    }

    /// A long batch (up to `Database.maxBatch` writes) is announced in parts of this many.
    public static let maxPerAnnouncement = 128

    /// Filled inside the transaction and emptied after it: only code on the writer's queue touches it.
    private let pending = Mutex<[Entry]>([])
    private let announce: @Sendable ([Entry]) -> Void

    /// Observes `database`'s batches; `announce` gets each committed batch's deliveries (never empty).
    public init(database: Database, announce: @escaping @Sendable ([Entry]) -> Void) {
        self.announce = announce
        database.observeBatches { [weak self] committed in self?.batchEnded(committed: committed) }
    }

    /// Notes a delivery appended in the current transaction (on the writer's queue).
    func record(_ entry: Entry) {
        pending.withLock { $0.append(entry) }
    }

    private func batchEnded(committed: Bool) {
        let entries = pending.withLock { pending in
            defer { pending.removeAll(keepingCapacity: true) }
            return committed ? pending : []
        }
        var start = 0
        while start < entries.count {
            let end = min(start + Self.maxPerAnnouncement, entries.count)
            announce(Array(entries[start..<end]))
            start = end
        }
    }
}
