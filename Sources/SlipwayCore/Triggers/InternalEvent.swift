import Foundation

/// Events Slipway appends itself (timers, base-image updates): `hook_id` `slipway`, signature
/// `internal`, media type `internal`. They are matched, traced and replayed like deliveries.
public struct InternalEvent: Codable, Sendable, Equatable {
    /// `schedule` or `base_image`.
    public var kind: String
    /// The tasks it queues, with the head commit of each one's context branch (resolved when the
    /// event was made, so matching stays a pure function of the event); an error instead when
    /// the branch could not be resolved.
    public var targets: [Target]
    /// `0 3 * * *` for a schedule; the image reference for a base-image update.
    public var source: String
    /// The cron slot (ISO-8601 UTC) or the new digest.
    public var detail: String
    /// The digest before (base-image updates).
    public var previous: String?

    public struct Target: Codable, Sendable, Equatable {
        public var task: String
        public var branch: String
        public var commit: String?
        public var error: String?

        public init(task: String, branch: String, commit: String?, error: String?) {
            self.task = task
            self.branch = branch
            self.commit = commit
            self.error = error
        }
    }

    public static let hookID = "slipway"
    public static let signature = "internal"
    public static let mediaType = "internal"

    public init(kind: String, targets: [Target], source: String, detail: String, previous: String? = nil) {
        self.kind = kind
        self.targets = targets
        self.source = source
        self.detail = detail
        self.previous = previous
    }

    /// The delivery to append; `id` makes it unique (a slot, a digest).
    public func delivery(id: String) throws -> Delivery {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let body = try encoder.encode(self)
        return Delivery(
            deliveryID: id, hookID: Self.hookID, eventType: kind, signature: Self.signature, headersJSON: "{}", body: Array(body),
            mediaType: Self.mediaType)
    }

    public static func decode(_ event: StoredEvent) -> InternalEvent? {
        guard event.hookID == hookID, event.signature == signature else { return nil }
        return try? JSONDecoder().decode(InternalEvent.self, from: Data(event.body))
    }
}
