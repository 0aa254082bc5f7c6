import Foundation

/// Decides what to do with one `POST /webhooks/github`, independent of the HTTP server.
///
/// The checks run in DESIGN.md's order of trust: the signature over the exact bytes first
/// (so an unsigned caller learns nothing else), then the content type, the GitHub headers and
/// the payload's syntax. Only the verdict and a `Delivery` come out; nothing is stored here.
public struct WebhookIntake: Sendable {
    public var verifier: SignatureVerifier
    public var maxBodyBytes: Int
    /// Bytes of bodies held before their signature is checked, all connections together.
    public var maxInflightBytes: Int

    public init(verifier: SignatureVerifier, maxBodyBytes: Int, maxInflightBytes: Int = 268_435_456) {
        self.verifier = verifier
        self.maxBodyBytes = maxBodyBytes
        self.maxInflightBytes = maxInflightBytes
    }

    /// A refusal: the HTTP status and a reason safe to send and log.
    public struct Rejection: Error, Equatable, Sendable {
        public var status: Int
        public var reason: String

        public init(status: Int, reason: String) {
            self.status = status
            self.reason = reason
        }
    }

    /// An accepted delivery, and for pings the `zen` to echo.
    public struct Accepted: Sendable {
        public var delivery: Delivery
        public var zen: String?
    }

    public static let maxDeliveryIDLength = 128

    /// Checks a request given its headers (any case) and the body bytes read so far.
    public func inspect(headers: [(name: String, value: String)], body: [UInt8]) -> Result<Accepted, Rejection> {
        func header(_ name: String) -> String? {
            headers.first { $0.name.caseInsensitiveEquals(name) }?.value
        }
        if body.count > maxBodyBytes {
            return .failure(Rejection(status: 413, reason: "body is larger than webhook.max_body_bytes (\(maxBodyBytes) bytes)"))
        }
        let signature: String
        do {
            signature = try verifier.verify(sha256: header("X-Hub-Signature-256"), sha1: header("X-Hub-Signature"), body: body)
        } catch {
            return .failure(Rejection(status: 401, reason: error.reason))
        }
        let mediaType = (header("Content-Type") ?? "").split(separator: ";").first.map { String($0).trimmingSpaces.lowercased() } ?? ""
        let payload: [UInt8]
        switch mediaType {
        case "application/json":
            payload = body
        case "application/x-www-form-urlencoded":
            guard let p = FormDecoding.field("payload", in: body) else {
                return .failure(Rejection(status: 400, reason: "form body has no 'payload' field"))
            }
            payload = p
        default:
            let shown = mediaType.isEmpty ? "none" : "'\(mediaType)'"
            return .failure(
                Rejection(status: 415, reason: "content type \(shown) is not application/json or application/x-www-form-urlencoded"))
        }
        guard let event = header("X-GitHub-Event").map(\.trimmingSpaces), !event.isEmpty else {
            return .failure(Rejection(status: 400, reason: "missing X-GitHub-Event header"))
        }
        guard Self.isToken(event, maxLength: 64) else {
            return .failure(Rejection(status: 400, reason: "X-GitHub-Event must be a short name of letters, digits, '_' or '-'"))
        }
        guard let deliveryID = header("X-GitHub-Delivery").map(\.trimmingSpaces), !deliveryID.isEmpty else {
            return .failure(Rejection(status: 400, reason: "missing X-GitHub-Delivery header"))
        }
        guard Self.isToken(deliveryID, maxLength: Self.maxDeliveryIDLength) else {
            return .failure(
                Rejection(status: 400, reason: "X-GitHub-Delivery must be at most \(Self.maxDeliveryIDLength) letters, digits, '-' or '_'"))
        }
        let hookID = header("X-GitHub-Hook-ID")?.trimmingSpaces ?? ""
        guard hookID.isEmpty || Self.isToken(hookID, maxLength: 64) else {
            return .failure(Rejection(status: 400, reason: "X-GitHub-Hook-ID must be a short id of letters, digits, '-' or '_'"))
        }
        do {
            try JSONValidator.validate(payload)
        } catch {
            return .failure(Rejection(status: 400, reason: "payload is not valid JSON: \(error)"))
        }
        var zen: String?
        if event == "ping" {
            let object = try? JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any]
            zen = object?["zen"] as? String ?? ""
        }
        let delivery = Delivery(
            deliveryID: deliveryID, hookID: hookID, eventType: event, signature: signature,
            headersJSON: Self.headersJSON(headers), body: body, mediaType: mediaType)
        return .success(Accepted(delivery: delivery, zen: zen))
    }

    static func isToken(_ s: String, maxLength: Int) -> Bool {
        s.utf8.count <= maxLength
            && s.utf8.allSatisfy { c in
                (0x30...0x39).contains(c) || (0x41...0x5a).contains(c) || (0x61...0x7a).contains(c) || c == 0x2d || c == 0x5f || c == 0x2e
            }
    }

    /// The headers as one JSON object with lower-cased names; repeated names are joined with ", ".
    static func headersJSON(_ headers: [(name: String, value: String)]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(headers.reduce(2) { $0 + $1.name.utf8.count + $1.value.utf8.count + 6 })
        out.append(UInt8(ascii: "{"))
        for (i, (name, value)) in headers.enumerated() {
            // A repeated name was joined into its first occurrence.
            if headers[..<i].contains(where: { $0.name.caseInsensitiveEquals(name) }) { continue }
            if out.count > 1 { out.append(UInt8(ascii: ",")) }
            JSONText.append(name, to: &out, lowercasingASCII: true)
            out.append(UInt8(ascii: ":"))
            let repeats = headers[(i + 1)...].filter { $0.name.caseInsensitiveEquals(name) }
            if repeats.isEmpty {
                JSONText.append(value, to: &out)
            } else {
                JSONText.append(([value] + repeats.map(\.value)).joined(separator: ", "), to: &out)
            }
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }
}

extension String {
    func caseInsensitiveEquals(_ other: String) -> Bool {
        utf8.count == other.utf8.count
            && zip(utf8, other.utf8).allSatisfy { a, b in a == b || (a | 0x20 == b | 0x20 && (a | 0x20) >= 0x61 && (a | 0x20) <= 0x7a) }
    }
}
