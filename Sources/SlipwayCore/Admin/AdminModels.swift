import Foundation

/// The admin API's JSON documents (`/v1/...`), shared by the daemon and the CLI.
///
/// Field names are stable for scripts: snake_case, times ISO-8601 UTC, durations in seconds.
public enum AdminAPI {
    public static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return e
    }()

    public static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }()

    public struct Task: Codable, Sendable, Equatable {
        public var name: String
        public var context: String
        public var dockerfile: String
        public var tags: [String]
        public var push: Bool
        public var enabled: Bool
        public var timeout: String
        public var definedIn: String
        /// Defined in `tasks.d/NAME.yaml`, so `task update`/`delete` may change it.
        public var editable: Bool
        public var lastRun: Run?
        /// What triggers it besides manual runs.
        public var trigger: Trigger? = nil
        /// Base images its last successful build pulled, with the digest last seen in their registry.
        public var baseImages: [BaseImage]? = nil
    }

    public struct Trigger: Codable, Sendable, Equatable {
        public var branches: [String]
        public var tags: [String]
        public var pullRequests: [String]?
        public var baseImage: Bool
        public var schedule: [String]
    }

    public struct BaseImage: Codable, Sendable, Equatable {
        public var image: String
        public var digest: String
        public var runId: String
        public var checkedAt: String
        public init(image: String, digest: String, runId: String, checkedAt: String) {
            self.image = image
            self.digest = digest
            self.runId = runId
            self.checkedAt = checkedAt
        }
    }

    public struct Run: Codable, Sendable, Equatable {
        public var id: String
        public var task: String
        public var status: String
        public var trigger: String
        public var branch: String
        public var commit: String
        public var attempt: Int
        public var event: Int64?
        public var createdAt: String
        public var startedAt: String?
        public var finishedAt: String?
        public var updatedAt: String
        public var reason: String
        public var step: String
        /// `build`, or `push-retry` for `slipway run retry-push`.
        public var kind: String
        public var engine: String
        public var requestedBy: String?
        public var exitCode: Int?
        public var durations: [String: Double]
        public var durationSeconds: Double
        public var images: [Image]
        /// Commit statuses sent (or being sent) to GitHub for this run (`run show` only).
        public var statuses: [CommitStatus]? = nil
    }

    public struct Engine: Codable, Sendable, Equatable {
        public var name: String
        public var host: String
        /// `up` or `down`.
        public var state: String
        public var running: Int
        public var maxConcurrent: Int
        public var labels: [String]
        public var lastError: String?
        public var lastSeen: String?
        /// Free bytes where the engine keeps images and build cache, when measured (on this
        /// host, over ssh, or with the engine's `disk_probe_image`).
        public var diskFreeBytes: Int64? = nil
        /// Why the free space is not measured, when it is not.
        public var diskUnmeasured: String? = nil
    }

    public struct GitHubHook: Codable, Sendable, Equatable {
        public var repo: String
        public var id: Int
        public var url: String
        public var events: [String]
        public var active: Bool
        public var created: Bool

        public init(_ hook: HookManager.Hook, repo: String, created: Bool) {
            self.repo = repo
            self.id = hook.id
            self.url = hook.url
            self.events = hook.events
            self.active = hook.active
            self.created = created
        }
    }

    public struct Image: Codable, Sendable, Equatable {
        public var tag: String
        public var digest: String
    }

    public struct Event: Codable, Sendable, Equatable {
        public var seq: Int64
        public var receivedAt: String
        public var delivery: String
        public var hookId: String
        public var type: String
        public var signature: String
        public var repository: String?
        public var ref: String?
        public var after: String?
        public var trace: [TraceEntry]?
        public var payload: String?
    }

    public struct TraceEntry: Codable, Sendable, Equatable {
        public var task: String
        public var matched: Bool
        public var reason: String
        public var runId: String?

        public init(task: String, matched: Bool, reason: String, runId: String?) {
            self.task = task
            self.matched = matched
            self.reason = reason
            self.runId = runId
        }
    }

    public struct RunRequest: Codable, Sendable {
        public var branch: String?
        public var commit: String?
        public init(branch: String?, commit: String?) {
            self.branch = branch
            self.commit = commit
        }
    }

    public struct Queued: Codable, Sendable {
        public var runId: String
        public init(runId: String) { self.runId = runId }
    }

    public struct Problem: Codable, Sendable, Error {
        public var error: String
        public init(_ error: String) { self.error = error }
    }

    public struct Reloaded: Codable, Sendable {
        public var tasks: Int
        public init(tasks: Int) { self.tasks = tasks }
    }
}

extension AdminAPI.Run {
    public init(_ r: RunRecord) {
        let durations = r.durations
        self.init(
            id: r.runID, task: r.task, status: r.status.rawValue, trigger: r.trigger.rawValue, branch: r.branch, commit: r.commit,
            attempt: r.attempt, event: r.eventSeq, createdAt: r.createdAt, startedAt: r.startedAt, finishedAt: r.finishedAt,
            updatedAt: r.updatedAt, reason: r.reason, step: r.step.rawValue, kind: r.state.kind.rawValue, engine: r.engine,
            requestedBy: r.requestedBy.isEmpty ? nil : r.requestedBy, exitCode: r.exitCode, durations: durations, durationSeconds: durations.values.reduce(0, +),
            images: r.images.map { AdminAPI.Image(tag: $0.tag, digest: $0.digest) })
    }
}

extension AdminAPI.Task {
    public init(_ task: TaskDefinition, defaultTimeout: Duration, tasksDirectory: String, lastRun: RunRecord?) {
        self.init(
            name: task.name, context: task.context.description, dockerfile: task.dockerfile, tags: task.tags, push: task.push,
            enabled: task.enabled, timeout: DurationParser.format(task.timeout ?? defaultTimeout),
            definedIn: "\(task.definedIn):\(task.line)", editable: task.definedIn.hasPrefix(tasksDirectory),
            lastRun: lastRun.map(AdminAPI.Run.init),
            trigger: AdminAPI.Trigger(
                branches: task.branchGlobs, tags: task.trigger.tags, pullRequests: task.trigger.pullRequestBranches,
                baseImage: task.trigger.baseImage, schedule: task.trigger.schedule.map(\.text)))
    }
}

extension AdminAPI.Event {
    public init(_ event: StoredEvent, trace: [AdminAPI.TraceEntry]?, payload: Bool) {
        let push = event.eventType == "push" ? try? PushEvent.decode(event) : nil
        self.init(
            seq: event.seq, receivedAt: event.receivedAt, delivery: event.deliveryID, hookId: event.hookID, type: event.eventType,
            signature: event.signature,
            repository: push.map { $0.repositoryName.isEmpty ? ($0.repositoryURLs.first ?? "") : $0.repositoryName },
            ref: push?.ref, after: push?.after, trace: trace,
            payload: payload ? String(decoding: event.body, as: UTF8.self) : nil)
    }
}
