import Logging
import ServiceLifecycle

/// Keeps the database open while the daemon runs; on shutdown commits what was accepted, then closes.
///
/// It is the first service in the group, so it stops last: the listener has stopped accepting
/// and answered its in-flight requests (whose appends are committed) before the log closes.
public struct EventLogService: Service {
    let database: Database
    let logger: Logger

    public init(database: Database, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    public func run() async throws {
        try? await gracefulShutdown()
        await database.close()
        let stats = database.statistics
        logger.info(
            "event log closed",
            metadata: ["commits": "\(stats.commits)", "writes": "\(stats.writes)", "failed_commits": "\(stats.failedCommits)",
                "checkpoints": "\(stats.checkpoints)", "writer_checkpoints": "\(stats.writerCheckpoints)",
                "inline_commits": "\(stats.inlineCommits)",
            ])
    }
}
