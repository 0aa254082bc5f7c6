import Foundation

/// A verified webhook delivery, ready to be appended to the event log.
public struct Delivery: Sendable {
    public var deliveryID: String
    /// `X-GitHub-Hook-ID`, or "" when the sender gave none.
    public var hookID: String
    public var eventType: String
    /// Which secret matched ("sha256:/etc/slipway/secrets/webhook"), never the secret.
    public var signature: String
    /// The request headers as a JSON object (names lower-cased).
    public var headersJSON: String
    /// The exact bytes received.
    public var body: [UInt8]
    /// How the intake read the body (`application/json` or `application/x-www-form-urlencoded`):
    /// stored with it so later stages never guess the format again from unsigned headers.
    public var mediaType: String
    public var receivedAt: Timestamp

    public init(
        deliveryID: String, hookID: String, eventType: String, signature: String,
        headersJSON: String, body: [UInt8], mediaType: String = "application/json", receivedAt: Timestamp = .now()
    ) {
        self.mediaType = mediaType
        self.deliveryID = deliveryID
        self.hookID = hookID
        self.eventType = eventType
        self.signature = signature
        self.headersJSON = headersJSON
        self.body = body
        self.receivedAt = receivedAt
    }
}

/// One row of `events`.
public struct StoredEvent: Sendable, Equatable {
    public var seq: Int64
    public var receivedAt: String
    public var deliveryID: String
    public var hookID: String
    public var eventType: String
    public var signature: String
    public var headersJSON: String
    public var body: [UInt8]
    /// The intake's decision; "" for events stored before it was recorded (see `payload`).
    public var mediaType: String = ""

    public init(
        seq: Int64, receivedAt: String, deliveryID: String, hookID: String, eventType: String, signature: String,
        headersJSON: String, body: [UInt8], mediaType: String = ""
    ) {
        self.seq = seq
        self.receivedAt = receivedAt
        self.deliveryID = deliveryID
        self.hookID = hookID
        self.eventType = eventType
        self.signature = signature
        self.headersJSON = headersJSON
        self.body = body
        self.mediaType = mediaType
    }

    /// The JSON payload: the body itself, or the `payload=` field of a form body. Decided only by
    /// the media type the intake stored; events from before that (media type "") by the stored
    /// `content-type` header's exact media type, as the intake decided then.
    public var payload: [UInt8] {
        var type = mediaType
        if type.isEmpty { type = Self.legacyMediaType(headersJSON: headersJSON) }
        guard type == "application/x-www-form-urlencoded" else { return body }
        return FormDecoding.field("payload", in: body) ?? []
    }

    static func legacyMediaType(headersJSON: String) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: Data(headersJSON.utf8)) as? [String: Any],
            let value = object["content-type"] as? String
        else { return "application/json" }
        return value.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
    }
}

/// What `append` did.
public enum AppendOutcome: Sendable, Equatable {
    /// A new row with this seq is on disk.
    case appended(Int64)
    /// The same (hook id, delivery id) was already stored as this seq; nothing was written.
    case duplicate(Int64)

    public var seq: Int64 {
        switch self {
        case .appended(let s), .duplicate(let s): s
        }
    }
}
