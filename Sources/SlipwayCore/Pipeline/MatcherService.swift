import Logging
import ServiceLifecycle

/// The first consumer of the event log: follows its cursor and matches events to tasks.
///
/// The receiver issue lays only the plumbing: every event is read in order from the persisted
/// cursor `matcher` and logged; with no tasks configured nothing can match. Matching and runs
/// arrive with the pipeline.
public struct MatcherService: Service {
    public static let cursorName = "matcher"

    let log: EventLog
    let tasks: [TaskDefinition]
    let logger: Logger

    public init(log: EventLog, tasks: [TaskDefinition], logger: Logger) {
        self.log = log
        self.tasks = tasks
        self.logger = logger
    }

    public func run() async throws {
        let start = try await log.cursor(Self.cursorName)
        logger.info("matcher following the event log", metadata: ["cursor": "\(start)", "tasks": "\(tasks.count)"])
        do {
            for try await batch in log.feed(cursor: Self.cursorName).cancelOnGracefulShutdown() {
                for event in batch {
                    var meta: Logger.Metadata = ["event.seq": "\(event.seq)", "delivery.id": "\(event.deliveryID)", "event.type": "\(event.eventType)"]
                    meta["reason"] = tasks.isEmpty ? "no tasks configured" : "matching is not implemented yet"
                    logger.info("event matched no task", metadata: meta)
                }
                if let last = batch.last { try await log.saveCursor(Self.cursorName, seq: last.seq) }
            }
        } catch is CancellationError {
            // Graceful shutdown: the cursor already records everything handled.
        }
    }
}
