import ArgumentParser
import Foundation
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import SlipwayCore
import SlipwayServer

#if canImport(Glibc)
    import Glibc
#endif

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the daemon: the webhook listener and the build pipeline.")

    @OptionGroup var options: ConfigOption

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (default: $SLIPWAY_LOG_LEVEL or info).")
    var logLevel: String?

    func run() async throws {
        // Everything the daemon does is in UTC (timestamps, cron schedules, logs). Saying so spares
        // Foundation looking up the host's zone in ICU's data for HTTP `Date:` headers (~0.8 MB of
        // it stayed resident). Children do not inherit it: builds get PATH and DOCKER_HOST only.
        if getenv("TZ") == nil { setenv("TZ", "GMT", 1) }
        let levelText = logLevel ?? getenv("SLIPWAY_LOG_LEVEL").map { String(cString: $0) } ?? "info"
        guard let level = Logger.Level(rawValue: levelText) else {
            throw ValidationError("unknown log level '\(levelText)'")
        }
        if JournalLogHandler.stderrIsJournal(environment: ProcessInfo.processInfo.environment) {
            LoggingSystem.bootstrap { _ in JournalLogHandler(level: level) }
        } else {
            LoggingSystem.bootstrap { label in LineLogHandler(label: label, level: level) }
        }
        let logger = Logger(label: "slipway")
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))

        Self.raiseOpenFileLimit(logger: logger)
        let config: SlipwayConfig
        do {
            config = try ConfigLoader.load(path: options.path)
        } catch {
            for problem in error.errors { logger.critical("config: \(problem.description)") }
            throw ExitCode(1)
        }
        do {
            try await Daemon(configPath: FileText.absolute(options.path), config: config, registry: registry, logger: logger).run()
        } catch let error as DaemonError {
            logger.critical("\(error.description)")
            throw ExitCode(1)
        }
    }

    /// Many idle or hostile connections must not exhaust file descriptors: use the hard limit.
    static func raiseOpenFileLimit(logger: Logger) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        let before = limit.rlim_cur
        limit.rlim_cur = limit.rlim_max
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            logger.debug("raised the open file limit", metadata: ["from": "\(before)", "to": "\(limit.rlim_max)"])
        }
    }
}
