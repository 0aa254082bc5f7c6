import Foundation
import Logging
import Prometheus
import ServiceLifecycle
import SlipwayCore
import SlipwayServer
import UnixSignals

/// A startup failure, said plainly (the data dir cannot be created, a secret cannot be read).
struct DaemonError: Error, CustomStringConvertible {
    var description: String
}

/// Wires the services of `slipway serve` into one `ServiceGroup`.
struct Daemon {
    let configPath: String
    let config: SlipwayConfig
    let registry: PrometheusCollectorRegistry
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
        let intake = try Self.intake(for: config, logger: logger)
        var users: [String: String]?
        if let ui = config.ui {
            if let file = ui.usersFile {
                do { users = try UIController.loadUsers(file) } catch { throw DaemonError(description: "\(error)") }
            } else if !SlipwayConfig.isLoopback(ui.listen.host) {
                throw DaemonError(
                    description: "ui.listen \(ui.listen) is not a loopback address: set ui.users_file (htpasswd -B) so the web page asks for a login")
            }
        }
        let certificates: TLSCertificates?
        do {
            certificates = try config.tls.map { files throws(TLSCertificates.Invalid) in try TLSCertificates(files: files) }
        } catch {
            throw DaemonError(description: error.description)
        }
        do {
            try AdminServer.prepare(socketPath: config.adminSocket)
        } catch {
            throw DaemonError(description: "\(error)")
        }
        let log = try EventLog(database: database)
        let runs = RunStore(database: database, prefix: config.runIDPrefix)
        let leftovers = RunExecutor.removeLeftovers(dataDirectory: config.dataDirectory)
        if !leftovers.isEmpty {
            logger.notice("removed files left by interrupted runs", metadata: ["paths": "\(leftovers.joined(separator: ","))"])
        }
        let recovered = try await runs.recoverInterrupted()
        if !recovered.interrupted.isEmpty {
            logger.warning(
                "builds interrupted by a restart marked Error",
                metadata: [
                    "runs": "\(recovered.interrupted.joined(separator: ","))", "retried_as": "\(recovered.retried.joined(separator: ","))",
                ])
        }
        for runID in recovered.resumed {
            RunExecutor.note(
                "Run \(runID): the daemon restarted while this run was pushing; resuming the push of its kept images (no rebuild)",
                runID: runID, dataDirectory: config.dataDirectory, logger: logger)
        }
        if !recovered.resumed.isEmpty {
            logger.notice("pushes interrupted by a restart resume", metadata: ["runs": "\(recovered.resumed.joined(separator: ","))"])
        }
        let store = ConfigStore(path: configPath, initial: config)
        let wake = CommitSignal()
        let pushWake = CommitSignal()
        let control = RunControl()
        let processEnvironment = ProcessInfo.processInfo.environment
        let baseImages = BaseImageStore(database: database)
        let engines = EnginePool(config: { store.current }, defaultHost: processEnvironment["DOCKER_HOST"])
        let github = GitHubClients(config: { store.current })
        let executor = RunExecutor(
            environment: { BuildEnvironment(config: store.current, environment: processEnvironment) }, mirrors: KeyedLock(), logger: logger,
            baseImages: baseImages,
            githubToken: {
                guard let client = github.client else { return nil }
                return try? await client.token()
            }, engines: engines)
        let resolveHead: @Sendable (TaskDefinition) async -> (commit: String?, error: String?) = { task in
            do {
                return (try await executor.resolveBranch(task: task, branch: task.context.branch), nil)
            } catch let failure as StepFailure {
                return (nil, failure.reason)
            } catch {
                return (nil, "\(error)")
            }
        }
        let disk = DiskGuard()
        disk.check(config.dataDirectory, minimum: config.retention.minFreeDisk)
        if let low = disk.low { logger.warning("no new build starts: \(low)") }
        let retention = Retention(
            runs: runs, environment: { BuildEnvironment(config: store.current, environment: processEnvironment) }, engines: engines,
            logger: logger)
        let builder = BuilderStage(
            runs: runs, executor: executor, config: { store.current }, wake: wake, pushWake: pushWake, control: control, logger: logger,
            disk: disk, retention: retention, engines: engines)
        let controller = WebhookController(log: log, intake: intake, logger: logger, diskLow: { disk.low ?? engines.diskLow })
        let reload = Reload(store: store, webhook: controller, running: config, certificates: certificates, logger: logger)
        let outbox = StatusOutbox(database: database)
        let operations = Operations(
            config: store, log: log, runs: runs, executor: executor, control: control, wake: wake, pushWake: pushWake, logger: logger)
        let admin = AdminController(
            operations: operations, reload: { reload() }, logger: logger, baseImages: baseImages, github: github, outbox: outbox,
            engines: engines)
        let listen = config.listen
        let logger = self.logger
        let environment = ProcessInfo.processInfo.environment
        let notifier = SystemdNotifier(environment: environment)
        let scheme = certificates == nil ? "http" : "https"
        let webhook = try WebhookServer.application(
            controller: controller, metrics: MetricsEndpoint(registry: registry, runs: runs), host: listen.host, port: listen.port,
            readTimeout: config.webhook.readTimeout, gate: ConnectionGate(limit: config.webhook.maxConnections), tls: certificates,
            logger: logger,
            onRunning: { port in
                let shown = SlipwayConfig.ListenAddress(host: listen.host, port: port)
                notifier.ready(status: "Ready: listening on \(shown)")
                let released = StartupPages.release(environment: environment)
                logger.notice(
                    "slipway ready",
                    metadata: [
                        "webhook.url": "\(scheme)://\(shown)/webhooks/github", "data_dir": "\(config.dataDirectory)",
                        "events": "\(log.lastCommittedSeq)",
                        "tasks": "\(config.tasks.count)",
                    ])
                logger.debug("start-up pages released", metadata: ["bytes": "\(released)"])
            })
        let reloader = ReloadService(reload: reload, notifier: notifier)
        let systemd = SystemdService(
            notifier: notifier, log: log, runs: runs, watchdogInterval: SystemdNotifier.watchdogInterval(environment: environment),
            allowTestHang: environment["SLIPWAY_TEST_HANG"] == "1", logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let ui = config.ui {
            let controller = UIController(operations: operations, users: users, engines: engines)
            services.append(.init(service: UIServer.application(controller: controller, listen: ui.listen, logger: logger)))
        }
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: EventLogService(database: database, logger: logger)),
                    .init(service: MatcherService(log: log, runs: runs, tasks: { store.tasks }, logger: logger, onQueued: { wake.bump() })),
                    .init(service: ScheduleService(log: log, tasks: { store.tasks }, resolve: resolveHead, logger: logger)),
                    .init(
                        service: BaseImageService(
                            store: baseImages, log: log, config: { store.current }, resolve: resolveHead, logger: logger)),
                    // The pusher before the builder: shutdown runs in reverse order, so the builder
                    // drains first and the pusher still pushes what it finishes within the grace.
                    .init(
                        service: PusherStage(
                            runs: runs, executor: executor, config: { store.current }, wake: pushWake, control: control, logger: logger,
                            upstreamFinished: builder.finished, retention: retention)),
                    .init(
                        service: StatusService(
                            outbox: outbox, client: { github.client }, config: { store.current }, changes: runs.changes, logger: logger)),
                    .init(service: ReconcileService(hooks: { github.hooks }, log: log, config: { store.current }, logger: logger)),
                    .init(
                        service: EngineHealthService(
                            pool: engines,
                            docker: {
                                (store.current.builds.docker, processEnvironment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin", store.current.dataDirectory + "/tmp")
                            }, wake: wake, logger: logger)),
                    .init(service: RetentionService(retention: retention, disk: disk, config: { store.current }, wake: wake, logger: logger)),
                    .init(service: builder),
                    .init(service: webhook),
                    .init(service: AdminServer.application(controller: admin, socketPath: config.adminSocket, logger: logger)),
                    .init(service: reloader),
                    .init(service: systemd),
                ] + services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
        logger.notice("slipway stopped")
    }

    /// The webhook checks for `config`: secrets read from their files now.
    static func intake(for config: SlipwayConfig, logger: Logger) throws -> WebhookIntake {
        let secrets: [WebhookSecret]
        do {
            secrets = try WebhookSecret.load(files: config.webhook.secretFiles)
        } catch {
            throw DaemonError(description: "cannot read webhook secret \(error)")
        }
        if secrets.isEmpty {
            // Unsigned deliveries are acceptable only from this host (a test, a proxy that verifies).
            guard SlipwayConfig.isLoopback(config.listen.host) else {
                throw DaemonError(
                    description:
                        "no webhook secret: set webhook.secret_files (GitHub's hook secret) or listen on a loopback address; refusing to accept unsigned deliveries on \(config.listen)"
                )
            }
            logger.warning("webhook.secret_files is empty: deliveries are accepted WITHOUT signature checks (loopback only)")
        }
        for file in SecretFileAudit.exposed(in: config) {
            logger.warning(
                "secret file is readable by group or others; make it 0600, owned by the user slipway runs as", metadata: ["file": "\(file)"]
            )
        }
        return WebhookIntake(
            verifier: SignatureVerifier(secrets: secrets, allowSHA1: config.webhook.allowSHA1), maxBodyBytes: config.webhook.maxBodyBytes,
            maxInflightBytes: config.webhook.maxInflightBytes)
    }
}

/// The one reload, for SIGHUP and the admin API (`task create` and friends): re-read and validate
/// the config; on success swap it whole (tasks, registries, `builds.*`/`pushes.*`, secrets: every
/// stage reads the store when it claims a run) and re-read the webhook secrets, else keep the old
/// one. Keys only a restart applies are named in a warning when they changed.
struct Reload: Sendable {
    let store: ConfigStore
    let webhook: WebhookController
    /// The configuration the daemon started with: what the restart-only keys still are.
    let running: SlipwayConfig
    /// The listener's certificate, re-read on every reload (rotation without a restart).
    let certificates: TLSCertificates?
    let logger: Logger

    /// The keys a reload cannot apply, with their running and configured values, when they differ.
    static func restartOnlyChanges(running: SlipwayConfig, fresh: SlipwayConfig) -> [String] {
        var changed: [String] = []
        if running.listen != fresh.listen { changed.append("listen") }
        if running.dataDirectory != fresh.dataDirectory { changed.append("data_dir") }
        if running.adminSocket != fresh.adminSocket { changed.append("admin_socket") }
        if running.webhook.readTimeout != fresh.webhook.readTimeout { changed.append("webhook.read_timeout") }
        if running.webhook.maxConnections != fresh.webhook.maxConnections { changed.append("webhook.max_connections") }
        if running.runIDPrefix != fresh.runIDPrefix { changed.append("run_id_prefix") }
        if (running.tls == nil) != (fresh.tls == nil) { changed.append("tls") }
        if running.ui?.listen != fresh.ui?.listen { changed.append("ui.listen") }
        return changed
    }

    func callAsFunction() -> Result<SlipwayConfig, ConfigErrors> {
        let result = store.reload()
        switch result {
        case .success(let fresh):
            do {
                webhook.update(try Daemon.intake(for: fresh, logger: logger))
                logger.notice("configuration reloaded", metadata: ["tasks": "\(fresh.tasks.count)"])
                if let certificates, let files = fresh.tls {
                    do {
                        try certificates.reload(files)
                        logger.notice("TLS certificate reloaded", metadata: ["file": "\(files.certificate)"])
                    } catch {
                        logger.error("reload: keeping the old TLS certificate: \(error.description)")
                    }
                }
                let changed = Self.restartOnlyChanges(running: running, fresh: fresh)
                if !changed.isEmpty {
                    logger.warning(
                        "reload: these keys changed but take effect only after a restart: \(changed.joined(separator: ", "))",
                        metadata: ["keys": "\(changed.joined(separator: ","))"])
                }
            } catch {
                logger.error("reload: webhook secrets unreadable, keeping the old ones", metadata: ["error": "\(error)"])
            }
        case .failure(let errors):
            for problem in errors.errors { logger.error("reload refused, keeping the running configuration: \(problem.description)") }
        }
        return result
    }
}

/// SIGHUP: reload, telling systemd (RELOADING=1, then READY=1).
struct ReloadService: Service {
    let reload: Reload
    let notifier: SystemdNotifier

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            notifier.reloading()
            defer { notifier.ready(status: "Ready: configuration reloaded") }
            _ = reload()
        }
    }
}
