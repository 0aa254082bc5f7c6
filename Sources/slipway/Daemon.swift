import Logging
import ServiceLifecycle
import UnixSignals
import SlipwayCore
import SlipwayServer

/// A startup failure, said plainly (the data dir cannot be created, a secret cannot be read).
struct DaemonError: Error, CustomStringConvertible {
    var description: String
}

/// Wires the services of `slipway serve` into one `ServiceGroup`.
struct Daemon {
    let config: SlipwayConfig
    let logger: Logger

    func run() async throws {
        do {
            try FileText.makeDirectories(config.dataDirectory)
        } catch {
            throw DaemonError(description: "cannot create data_dir: \(error)")
        }
        let database: Database
        do {
            database = try Database(path: config.databasePath)
        } catch {
            throw DaemonError(description: "cannot open the event log \(config.databasePath): \(error)")
        }
        let secrets: [WebhookSecret]
        do {
            secrets = try WebhookSecret.load(files: config.webhook.secretFiles, logger: logger)
        } catch {
            throw DaemonError(description: "cannot read webhook secret \(error)")
        }
        if secrets.isEmpty {
            logger.warning("webhook.secret_files is empty: deliveries are accepted WITHOUT signature checks")
        }
        let log = try EventLog(database: database)
        let runs = RunStore(database: database, prefix: config.runIDPrefix)
        let recovered = try await runs.recoverInterrupted()
        if !recovered.interrupted.isEmpty {
            logger.warning(
                "runs interrupted by a restart marked Error",
                metadata: ["runs": "\(recovered.interrupted.joined(separator: ","))", "retried_as": "\(recovered.retried.joined(separator: ","))"])
        }
        let leftovers = RunExecutor.removeLeftovers(dataDirectory: config.dataDirectory)
        if !leftovers.isEmpty {
            logger.notice("removed files left by interrupted runs", metadata: ["paths": "\(leftovers.joined(separator: ","))"])
        }
        let tasks = config.tasks
        let wake = CommitSignal()
        let executor = RunExecutor(environment: BuildEnvironment(config: config), mirrors: KeyedLock(), logger: logger)
        let intake = WebhookIntake(
            verifier: SignatureVerifier(secrets: secrets, allowSHA1: config.webhook.allowSHA1),
            maxBodyBytes: config.webhook.maxBodyBytes)
        let controller = WebhookController(log: log, intake: intake, logger: logger)
        let listen = config.listen
        let logger = self.logger
        let app = WebhookServer.application(
            controller: controller, host: listen.host, port: listen.port, logger: logger,
            onRunning: { port in
                let shown = SlipwayConfig.ListenAddress(host: listen.host, port: port)
                logger.notice(
                    "slipway ready",
                    metadata: ["webhook.url": "http://\(shown)/webhooks/github", "data_dir": "\(config.dataDirectory)", "events": "\(log.lastCommittedSeq)"])
            })
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: EventLogService(database: database, logger: logger)),
                    .init(service: MatcherService(log: log, runs: runs, tasks: { tasks }, logger: logger, onQueued: { wake.bump() })),
                    .init(
                        service: BuilderService(
                            runs: runs, executor: executor, tasks: { tasks }, maxConcurrent: config.builds.maxConcurrent, wake: wake,
                            logger: logger)),
                    .init(service: app),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
        logger.notice("slipway stopped")
    }
}
