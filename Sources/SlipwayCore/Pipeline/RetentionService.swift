import Foundation
import Logging
import ServiceLifecycle

/// Checks free space every 10 s (the disk guard), prunes the build cache of engines that built
/// (at most every five minutes each) and removes run logs older than `retention.run_logs`.
public struct RetentionService: Service {
    let retention: Retention
    let disk: DiskGuard
    let config: @Sendable () -> SlipwayConfig
    /// Woken when space returns: the builder starts what waited.
    let wake: CommitSignal
    let logger: Logger

    public init(retention: Retention, disk: DiskGuard, config: @escaping @Sendable () -> SlipwayConfig, wake: CommitSignal, logger: Logger) {
        self.retention = retention
        self.disk = disk
        self.config = config
        self.wake = wake
        self.logger = logger
    }

    public func run() async throws {
        var nextLogSweep = ContinuousClock.now
        while !Task.isCancelledOrShuttingDown {
            let current = config()
            switch disk.check(current.dataDirectory, minimum: current.retention.minFreeDisk) {
            case true?:
                logger.warning("no new build starts: \(disk.low ?? "disk low")")
            case false?:
                logger.notice("disk space is back: queued builds start", metadata: ["data_dir": "\(current.dataDirectory)"])
                wake.bump()
            case nil:
                break
            }
            if disk.low != nil { wake.bump() }  // the builder records the reason on the waiting runs
            await retention.pruneDueBuildCaches()
            if ContinuousClock.now >= nextLogSweep {
                await retention.pruneRunLogs()
                // Hourly, or more often when logs are kept for less than two hours.
                let seconds = min(3600, max(1, current.retention.runLogs.components.seconds / 2))
                nextLogSweep = .now + .seconds(seconds)
            }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(min(10, max(1, current.retention.runLogs.components.seconds)))) }
            } catch {
                break
            }
        }
    }
}
