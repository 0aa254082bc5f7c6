import Foundation
import Logging
import ServiceLifecycle

/// The repository webhook that points at this Slipway, found by its `config.url` (GitHub never
/// shows a hook's secret, so create and update always send the whole config). Other services'
/// hooks are never touched.
public struct HookManager: Sendable {
    let client: GitHubClient
    /// `<public_url>/webhooks/github`.
    public let url: String
    let secret: String?

    public init(client: GitHubClient, url: String, secret: String?) {
        self.client = client
        self.url = url
        self.secret = secret
    }

    public struct Hook: Codable, Sendable, Equatable {
        public var id: Int
        public var url: String
        public var events: [String]
        public var active: Bool
        public var contentType: String?
    }

    public struct Failure: Error, CustomStringConvertible {
        public var status: Int
        public var description: String
    }

    /// A GitHub refusal said so an operator knows which permission is missing.
    static func failure(_ response: GitHubClient.Response, repo: String, doing: String) -> Failure {
        let message = GitHubClient.message(response)
        let hint: String
        switch response.status {
        case 401: hint = "the token is invalid or expired (github.token_file / github.app)"
        case 403: hint = "the token lacks permission: a classic PAT needs the admin:repo_hook scope, a fine-grained token or GitHub App \"Webhooks: read and write\" on \(repo)"
        case 404: hint = "\(repo) does not exist or the token cannot see it (private repository without access, or missing admin rights)"
        case 422: hint = "GitHub refused the hook's settings"
        default: hint = "unexpected answer"
        }
        return Failure(status: response.status, description: "cannot \(doing) for \(repo): HTTP \(response.status) \(message); \(hint)")
    }

    static func hook(_ object: [String: Any]) -> Hook? {
        guard let id = object["id"] as? Int, let config = object["config"] as? [String: Any] else { return nil }
        return Hook(
            id: id, url: config["url"] as? String ?? "", events: object["events"] as? [String] ?? [], active: object["active"] as? Bool ?? false,
            contentType: config["content_type"] as? String)
    }

    /// Our hook on `repo`, if any.
    public func find(repo: String) async throws -> Hook? {
        var page = 1
        while page <= 10 {
            let response = try await client.request("GET", "/repos/\(repo)/hooks?per_page=100&page=\(page)")
            guard response.status == 200 else { throw Self.failure(response, repo: repo, doing: "list webhooks") }
            let hooks = (response.json as? [[String: Any]] ?? []).compactMap(Self.hook)
            if let ours = hooks.first(where: { $0.url == url }) { return ours }
            if hooks.count < 100 { return nil }
            page += 1
        }
        return nil
    }

    /// Creates our hook, or updates it when it exists: one hook however often it is called.
    public func createOrUpdate(repo: String) async throws -> (hook: Hook, created: Bool) {
        var config: [String: Any] = ["url": url, "content_type": "json", "insecure_ssl": "0"]
        if let secret { config["secret"] = secret }
        let body: [String: Any] = ["name": "web", "active": true, "events": ["push", "pull_request"], "config": config]
        if let existing = try await find(repo: repo) {
            let response = try await client.request("PATCH", "/repos/\(repo)/hooks/\(existing.id)", json: body)
            guard response.status == 200, let hook = (response.json as? [String: Any]).flatMap(Self.hook) else {
                throw Self.failure(response, repo: repo, doing: "update the webhook")
            }
            return (hook, false)
        }
        let response = try await client.request("POST", "/repos/\(repo)/hooks", json: body)
        guard response.status == 201, let hook = (response.json as? [String: Any]).flatMap(Self.hook) else {
            throw Self.failure(response, repo: repo, doing: "create the webhook")
        }
        return (hook, true)
    }

    /// Deletes our hook; nil when there was none.
    public func delete(repo: String) async throws -> Hook? {
        guard let existing = try await find(repo: repo) else { return nil }
        let response = try await client.request("DELETE", "/repos/\(repo)/hooks/\(existing.id)")
        guard response.status == 204 || response.status == 200 else { throw Self.failure(response, repo: repo, doing: "delete the webhook") }
        return existing
    }
}

/// Catches up deliveries GitHub could not make (the daemon was down): at start and every
/// `github.reconcile_interval`, for each task repository, asks GitHub to redeliver every failed
/// delivery of our hook whose GUID is not in the event log, once each.
public struct ReconcileService: Service {
    let hooks: @Sendable () -> HookManager?
    let log: EventLog
    let config: @Sendable () -> SlipwayConfig
    let logger: Logger
    /// At most this many redeliveries per repository and round: one outage never becomes a storm.
    static let perRound = 25

    public init(hooks: @escaping @Sendable () -> HookManager?, log: EventLog, config: @escaping @Sendable () -> SlipwayConfig, logger: Logger) {
        self.hooks = hooks
        self.log = log
        self.config = config
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isCancelledOrShuttingDown {
            let current = config()
            if let manager = hooks(), let settings = current.github {
                let repos = Set(current.tasks.compactMap { GitHubClient.repository(of: $0.context.url) })
                for repo in repos.sorted() { await reconcile(repo: repo, manager: manager) }
                do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: settings.reconcileInterval) } } catch { break }
            } else {
                do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(60)) } } catch { break }
            }
        }
    }

    func reconcile(repo: String, manager: HookManager) async {
        do {
            guard let hook = try await manager.find(repo: repo) else { return }
            let response = try await manager.client.request("GET", "/repos/\(repo)/hooks/\(hook.id)/deliveries?per_page=100")
            guard response.status == 200 else { throw HookManager.failure(response, repo: repo, doing: "list the hook's deliveries") }
            let deliveries = response.json as? [[String: Any]] ?? []
            let failed = deliveries.filter { ($0["status"] as? String) != "OK" && !($0["redelivery"] as? Bool ?? false) }
            var asked = 0
            for delivery in failed {
                guard asked < Self.perRound, let id = delivery["id"] as? Int, let guid = delivery["guid"] as? String else { continue }
                if try await log.hasDelivery(guid) { continue }
                if try await log.wasRedelivered(guid) { continue }
                let attempt = try await manager.client.request("POST", "/repos/\(repo)/hooks/\(hook.id)/deliveries/\(id)/attempts")
                guard attempt.status == 202 || attempt.status == 200 else {
                    logger.warning("GitHub refused a redelivery", metadata: ["repo": "\(repo)", "delivery.id": "\(guid)", "status": "\(attempt.status)"])
                    continue
                }
                try await log.recordRedelivery(guid, repo: repo)
                SlipwayMetrics.redelivery()
                asked += 1
                logger.notice("asked GitHub to redeliver a missed delivery", metadata: ["repo": "\(repo)", "delivery.id": "\(guid)"])
            }
        } catch {
            logger.warning("reconcile: cannot check missed deliveries", metadata: ["repo": "\(repo)", "error": "\(error)"])
        }
    }
}
