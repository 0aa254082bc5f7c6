import Foundation
import Logging
import ServiceLifecycle

/// GitHub's tables: commit statuses to deliver (an outbox of appended rows, with their delivery
/// results appended beside them) and the deliveries Slipway asked GitHub to send again.
public enum GitHubSchema {
    static let migrations: [Migration] = [
        Migration(
            version: 6, name: "github outbox",
            sql: """
                CREATE TABLE github_statuses (
                    seq INTEGER PRIMARY KEY,
                    run_id TEXT NOT NULL,
                    repo TEXT NOT NULL,
                    sha TEXT NOT NULL,
                    context TEXT NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('pending', 'success', 'failure', 'error')),
                    description TEXT NOT NULL,
                    target_url TEXT,
                    created_at TEXT NOT NULL
                );
                CREATE INDEX github_statuses_run ON github_statuses (run_id, seq);
                CREATE TABLE github_status_results (
                    status_seq INTEGER NOT NULL REFERENCES github_statuses (seq),
                    at TEXT NOT NULL,
                    outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'retry', 'gave_up')),
                    detail TEXT NOT NULL
                );
                CREATE INDEX github_status_results_seq ON github_status_results (status_seq);
                CREATE TABLE github_redeliveries (
                    guid TEXT PRIMARY KEY,
                    repo TEXT NOT NULL,
                    at TEXT NOT NULL
                );
                CREATE TRIGGER github_statuses_no_update BEFORE UPDATE ON github_statuses
                    BEGIN SELECT RAISE(ABORT, 'github statuses are append-only'); END;
                CREATE TRIGGER github_status_results_no_update BEFORE UPDATE ON github_status_results
                    BEGIN SELECT RAISE(ABORT, 'github statuses are append-only'); END;
                """)
    ]
}

/// One commit status and what became of it, for `run show`.
public struct CommitStatus: Sendable, Codable, Equatable {
    public var seq: Int64
    public var runId: String
    public var repo: String
    public var sha: String
    public var context: String
    public var state: String
    public var description: String
    public var targetUrl: String?
    public var createdAt: String
    /// `delivered`, `gave_up`, or `pending` (not delivered yet, maybe retrying).
    public var delivery: String
    public var attempts: Int
    public var lastDetail: String?
}

/// The outbox: statuses derived from run state rows (followed by a cursor, like the matcher
/// follows events), and their delivery results.
public struct StatusOutbox: Sendable {
    public static let cursorName = "github-statuses"
    let database: Database

    public init(database: Database) { self.database = database }

    /// The status a run state row asks for: pending when queued or started, then the ending.
    static func status(for row: (runID: String, status: RunStatus, phase: RunPhase, step: String, reason: String, durations: String))
        -> (state: String, description: String)?
    {
        switch (row.phase, row.status) {
        case (.queued, .queued) where !row.reason.hasPrefix("waiting for disk"): return ("pending", "\(row.runID) queued")
        case (.building, .running) where row.step == RunStep.fetch.rawValue: return ("pending", "\(row.runID) is running")
        case (.ended, let status):
            let seconds = Int(((try? JSONSerialization.jsonObject(with: Data(row.durations.utf8))) as? [String: Double])?.values.reduce(0, +) ?? 0)
            let took = seconds > 0 ? " in \(seconds)s" : ""
            let why = row.reason.isEmpty ? "" : ": \(row.reason)"
            switch status {
            case .succeeded: return ("success", "\(row.runID) succeeded\(took)")
            case .failed: return ("failure", String("\(row.runID) failed in step \(row.step)\(why)".prefix(140)))
            case .timeout: return ("failure", String("\(row.runID) timed out\(why)".prefix(140)))
            case .canceled: return ("error", String("\(row.runID) canceled\(why)".prefix(140)))
            default: return ("error", String("\(row.runID) error\(why)".prefix(140)))
            }
        default: return nil
        }
    }

    /// Turns run state rows after the cursor into outbox rows (one transaction with the cursor).
    /// Returns how many statuses were queued.
    public func follow(publicURL: String?, pageURL: Bool) async throws -> Int {
        try await database.write(durable: false) { db in
            let cursor = try db.prepare("SELECT seq FROM cursors WHERE name = ?").bind([.text(Self.cursorName)]).rows { $0.int(0) }.first
            let start: Int64
            if let cursor {
                start = cursor
            } else {
                // First start with GitHub configured: statuses begin now, not for every old run.
                start = try db.prepare("SELECT COALESCE(MAX(seq), 0) FROM run_states").rows { $0.int(0) }.first ?? 0
            }
            let rows = try db.prepare(
                """
                SELECT s.seq, r.run_id, r.task, r.repo_url, r.commit_sha, s.status, s.phase, s.step, s.reason, s.durations
                FROM run_states s JOIN runs r ON r.id = s.run WHERE s.seq > ? ORDER BY s.seq LIMIT 500
                """
            ).bind([.integer(start)]).rows {
                (
                    seq: $0.int(0), runID: $0.text(1), task: $0.text(2), url: $0.text(3), sha: $0.text(4), status: $0.text(5),
                    phase: $0.text(6), step: $0.text(7), reason: $0.text(8), durations: $0.text(9)
                )
            }
            var queued = 0
            for row in rows {
                guard let status = RunStatus(rawValue: row.status), let phase = RunPhase(rawValue: row.phase),
                    let repo = GitHubClient.repository(of: row.url),
                    let (state, description) = Self.status(
                        for: (row.runID, status, phase, row.step, row.reason, row.durations))
                else { continue }
                let target = publicURL.flatMap { pageURL ? "\($0)/runs/\(row.runID)" : nil }
                try db.prepare(
                    """
                    INSERT INTO github_statuses (run_id, repo, sha, context, state, description, target_url, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """
                ).bind([
                    .text(row.runID), .text(repo), .text(row.sha), .text("slipway/\(row.task)"), .text(state), .text(description),
                    target.map { .text($0) } ?? .null, .text(Timestamp.now().iso8601),
                ]).run()
                queued += 1
            }
            if let last = rows.last?.seq ?? (cursor == nil ? start : nil) { try RunStore.saveCursor(Self.cursorName, seq: last, db: db) }
            return queued
        }
    }

    static let select = """
        SELECT g.seq, g.run_id, g.repo, g.sha, g.context, g.state, g.description, g.target_url, g.created_at,
               COALESCE((SELECT outcome FROM github_status_results WHERE status_seq = g.seq AND outcome <> 'retry' LIMIT 1), 'pending'),
               (SELECT COUNT(*) FROM github_status_results WHERE status_seq = g.seq),
               (SELECT detail FROM github_status_results WHERE status_seq = g.seq ORDER BY rowid DESC LIMIT 1)
        FROM github_statuses g
        """

    static func read(_ row: SQLiteStatement) -> CommitStatus {
        CommitStatus(
            seq: row.int(0), runId: row.text(1), repo: row.text(2), sha: row.text(3), context: row.text(4), state: row.text(5),
            description: row.text(6), targetUrl: row.isNull(7) ? nil : row.text(7), createdAt: row.text(8), delivery: row.text(9),
            attempts: Int(row.int(10)), lastDetail: row.isNull(11) ? nil : row.text(11))
    }

    /// Statuses not delivered and not given up, oldest first.
    public func pending(limit: Int = 50) async throws -> [CommitStatus] {
        try await database.read { db in
            try db.prepare(
                Self.select
                    + " WHERE NOT EXISTS (SELECT 1 FROM github_status_results WHERE status_seq = g.seq AND outcome <> 'retry') ORDER BY g.seq LIMIT ?"
            ).bind([.integer(Int64(limit))]).rows(Self.read)
        }
    }

    public func statuses(runID: String) async throws -> [CommitStatus] {
        try await database.read { db in
            try db.prepare(Self.select + " WHERE g.run_id = ? ORDER BY g.seq").bind([.text(runID)]).rows(Self.read)
        }
    }

    public func result(_ seq: Int64, outcome: String, detail: String) async throws {
        try await database.write(durable: outcome != "retry") { db in
            try db.prepare("INSERT INTO github_status_results (status_seq, at, outcome, detail) VALUES (?, ?, ?, ?)").bind([
                .integer(seq), .text(Timestamp.now().iso8601), .text(outcome), .text(detail),
            ]).run()
        }
    }
}

/// Delivers the outbox: retries with backoff while GitHub is down or answers 5xx, waits out
/// `Retry-After`/`X-RateLimit-Reset`, gives up after 24 h (logged); never blocks a build.
public struct StatusService: Service {
    let outbox: StatusOutbox
    let client: @Sendable () -> GitHubClient?
    let config: @Sendable () -> SlipwayConfig
    let changes: CommitSignal
    let logger: Logger

    public init(
        outbox: StatusOutbox, client: @escaping @Sendable () -> GitHubClient?, config: @escaping @Sendable () -> SlipwayConfig,
        changes: CommitSignal, logger: Logger
    ) {
        self.outbox = outbox
        self.client = client
        self.config = config
        self.changes = changes
        self.logger = logger
    }

    public func run() async throws {
        var notBefore: [Int64: Date] = [:]
        var backoff: [Int64: Double] = [:]
        var pausedUntil: Date?
        while !Task.isCancelledOrShuttingDown {
            let generation = changes.value
            let current = config()
            var wait: Double = 30
            if let client = client(), current.github?.statuses == true {
                _ = try? await outbox.follow(publicURL: current.publicURL, pageURL: false)
                let now = Date()
                if let paused = pausedUntil, paused > now {
                    wait = paused.timeIntervalSince(now)
                } else {
                    pausedUntil = nil
                    for status in (try? await outbox.pending()) ?? [] {
                        if let at = notBefore[status.seq], at > Date() {
                            wait = min(wait, at.timeIntervalSinceNow)
                            continue
                        }
                        let next = await deliver(status, client: client)
                        switch next {
                        case .done:
                            notBefore[status.seq] = nil
                            backoff[status.seq] = nil
                        case .retry(let why):
                            let delay = min(300, (backoff[status.seq] ?? 0.5) * 2)
                            backoff[status.seq] = delay
                            notBefore[status.seq] = Date().addingTimeInterval(delay)
                            wait = min(wait, delay)
                            try? await outbox.result(status.seq, outcome: "retry", detail: why)
                        case .pause(let until, let why):
                            pausedUntil = until
                            wait = max(0.05, until.timeIntervalSinceNow)
                            try? await outbox.result(status.seq, outcome: "retry", detail: why)
                            logger.warning("GitHub rate limit: statuses wait", metadata: ["until": "\(until)", "reason": "\(why)"])
                        }
                        if pausedUntil != nil { break }
                    }
                }
            }
            // Woken by run state changes, or when a retry is due.
            let sleep = Duration.milliseconds(Int64(max(0.05, wait) * 1000))
            let changes = self.changes
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await changes.wait(beyond: generation) }
                group.addTask { try? await Task.sleep(for: sleep) }
                group.addTask { try? await gracefulShutdown() }
                await group.next()
                group.cancelAll()
            }
        }
    }

    enum Next {
        case done
        case retry(String)
        case pause(Date, String)
    }

    func deliver(_ status: CommitStatus, client: GitHubClient) async -> Next {
        if let created = ISO8601DateFormatter.withFractions.date(from: status.createdAt), Date().timeIntervalSince(created) > 86_400 {
            try? await outbox.result(status.seq, outcome: "gave_up", detail: "not delivered within 24 h")
            logger.error("commit status given up after 24 h", metadata: ["run.id": "\(status.runId)", "repo": "\(status.repo)"])
            return .done
        }
        var body: [String: Any] = ["state": status.state, "description": status.description, "context": status.context]
        if let target = status.targetUrl { body["target_url"] = target }
        let response: GitHubClient.Response
        do {
            response = try await client.request("POST", "/repos/\(status.repo)/statuses/\(status.sha)", json: body)
        } catch {
            return error.unreachable ? .retry(error.description) : .done
        }
        switch response.status {
        case 200..<300:
            try? await outbox.result(status.seq, outcome: "delivered", detail: "HTTP \(response.status)")
            logger.info("commit status delivered", metadata: ["run.id": "\(status.runId)", "state": "\(status.state)", "repo": "\(status.repo)"])
            return .done
        case 403, 429:
            if let until = GitHubClient.retryAt(response) { return .pause(until, "rate limited (HTTP \(response.status))") }
            fallthrough
        case 400..<500:
            let why = "GitHub refused the status (HTTP \(response.status)): \(GitHubClient.message(response))"
            try? await outbox.result(status.seq, outcome: "gave_up", detail: why)
            logger.error("commit status refused", metadata: ["run.id": "\(status.runId)", "reason": "\(why)"])
            return .done
        default:
            return .retry("HTTP \(response.status)")
        }
    }
}

extension ISO8601DateFormatter {
    nonisolated(unsafe) static let withFractions: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }()
}
