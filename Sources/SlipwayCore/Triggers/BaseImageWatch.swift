import Foundation
import Logging
import ServiceLifecycle

/// The trigger tables: which base image each task was last built on, and its digest then.
public enum TriggerSchema {
    static let migrations: [Migration] = [
        Migration(
            version: 5, name: "base image watch",
            sql: """
                CREATE TABLE base_image_watch (
                    task TEXT NOT NULL,
                    image TEXT NOT NULL,
                    digest TEXT NOT NULL,
                    run_id TEXT NOT NULL,
                    recorded_at TEXT NOT NULL,
                    checked_at TEXT NOT NULL,
                    PRIMARY KEY (task, image)
                );
                """)
    ]
}

/// One watched base image of a task.
public struct WatchedImage: Sendable, Equatable, Codable {
    public var task: String
    public var image: String
    public var digest: String
    public var runId: String
    public var checkedAt: String
}

/// Reads and writes `base_image_watch`: a task's watched references are those of its last
/// successful build (replaced whole), each with the digest the registry served.
public struct BaseImageStore: Sendable {
    let database: Database

    public init(database: Database) { self.database = database }

    public func record(task: String, runID: String, images: [(image: String, digest: String)]) async throws {
        let now = Timestamp.now().iso8601
        try await database.write(durable: false) { db in
            try db.prepare("DELETE FROM base_image_watch WHERE task = ?").bind([.text(task)]).run()
            for (image, digest) in images {
                try db.prepare(
                    "INSERT INTO base_image_watch (task, image, digest, run_id, recorded_at, checked_at) VALUES (?, ?, ?, ?, ?, ?)"
                ).bind([.text(task), .text(image), .text(digest), .text(runID), .text(now), .text(now)]).run()
            }
        }
    }

    public func watched(task: String? = nil) async throws -> [WatchedImage] {
        try await database.read { db in
            let sql = "SELECT task, image, digest, run_id, checked_at FROM base_image_watch" + (task == nil ? "" : " WHERE task = ?")
                + " ORDER BY task, image"
            return try db.prepare(sql).bind(task.map { [.text($0)] } ?? []).rows {
                WatchedImage(task: $0.text(0), image: $0.text(1), digest: $0.text(2), runId: $0.text(3), checkedAt: $0.text(4))
            }
        }
    }

    /// Records a check; with `digest`, the new digest (the change has been turned into an event).
    public func checked(image: String, digest: String?) async throws {
        let now = Timestamp.now().iso8601
        try await database.write(durable: false) { db in
            if let digest {
                try db.prepare("UPDATE base_image_watch SET digest = ?, checked_at = ? WHERE image = ?").bind([.text(digest), .text(now), .text(image)])
                    .run()
            } else {
                try db.prepare("UPDATE base_image_watch SET checked_at = ? WHERE image = ?").bind([.text(now), .text(image)]).run()
            }
        }
    }
}

/// Every `builds.base_image_poll`, asks each watched image's registry for its current digest; a
/// changed digest appends one internal `base_image` event naming every task built on it (with
/// `trigger.base_image` on), which the matcher turns into `base-image` runs.
public struct BaseImageService: Service {
    let store: BaseImageStore
    let log: EventLog
    let config: @Sendable () -> SlipwayConfig
    let resolve: @Sendable (TaskDefinition) async -> (commit: String?, error: String?)
    let logger: Logger

    public init(
        store: BaseImageStore, log: EventLog, config: @escaping @Sendable () -> SlipwayConfig,
        resolve: @escaping @Sendable (TaskDefinition) async -> (commit: String?, error: String?), logger: Logger
    ) {
        self.store = store
        self.log = log
        self.config = config
        self.resolve = resolve
        self.logger = logger
    }

    public func run() async throws {
        var down: Set<String> = []  // registries whose outage was logged (once per outage)
        while !Task.isCancelledOrShuttingDown {
            let current = config()
            guard let period = current.builds.baseImagePoll else {
                do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(30)) } } catch { break }
                continue
            }
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: period) } } catch { break }
            await poll(current, down: &down)
        }
    }

    func poll(_ current: SlipwayConfig, down: inout Set<String>) async {
        let client = RegistryClient(registries: current.registries)
        let watching = current.tasks.filter { $0.enabled && $0.trigger.baseImage }
        guard let watched = try? await store.watched() else { return }
        let byImage = Dictionary(grouping: watched.filter { w in watching.contains { $0.name == w.task } }, by: \.image)
        for (image, entries) in byImage.sorted(by: { $0.key < $1.key }) {
            guard let ref = RegistryClient.Reference(image), !ref.isDigest else { continue }
            let digest: String
            do {
                digest = try await client.digest(of: image)
                if down.remove(ref.host) != nil { logger.notice("base image registry reachable again", metadata: ["registry": "\(ref.host)"]) }
            } catch {
                if down.insert(ref.host).inserted {
                    logger.warning("cannot check base images on this registry (logged once until it answers)", metadata: ["registry": "\(ref.host)", "error": "\(error.description)"])
                }
                continue
            }
            let previous = entries.first?.digest ?? ""
            guard digest != previous else {
                try? await store.checked(image: image, digest: nil)
                continue
            }
            var targets: [InternalEvent.Target] = []
            for entry in entries {
                guard let task = watching.first(where: { $0.name == entry.task }) else { continue }
                let head = await resolve(task)
                targets.append(.init(task: task.name, branch: task.context.branch, commit: head.commit, error: head.error))
            }
            let event = InternalEvent(kind: "base_image", targets: targets, source: image, detail: digest, previous: previous)
            do {
                let outcome = try await log.append(try event.delivery(id: "base-image-\(SHA256.hex(Array((image + digest).utf8)).prefix(24))"))
                try? await store.checked(image: image, digest: digest)
                logger.notice(
                    "base image changed: rebuilding the tasks built on it",
                    metadata: ["image": "\(image)", "digest": "\(digest)", "previous": "\(previous)", "tasks": "\(targets.map(\.task).joined(separator: ","))", "event.seq": "\(outcome.seq)"])
            } catch {
                logger.error("cannot append the base image event", metadata: ["image": "\(image)", "error": "\(error)"])
            }
        }
    }
}
