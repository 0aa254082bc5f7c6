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
    public var receivedAt: Timestamp

    public init(
        deliveryID: String, hookID: String, eventType: String, signature: String,
        headersJSON: String, body: [UInt8], receivedAt: Timestamp = .now()
    ) {
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
