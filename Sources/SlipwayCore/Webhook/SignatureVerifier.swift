/// A webhook secret and where it came from; the name is what the log records, never the value.
public struct WebhookSecret: Sendable {
    /// Where the secret came from (its file path), recorded as "which secret matched".
    public var name: String
    var key: [UInt8]

    public init(name: String, value: [UInt8]) {
        self.name = name
        self.key = value
    }
}

/// Checks `X-Hub-Signature-256` (and, when allowed, the legacy `X-Hub-Signature`) over the raw body.
public struct SignatureVerifier: Sendable {
    /// Why a delivery was refused; the text is safe to send back and to log.
    public enum Failure: Error, Equatable, Sendable {
        case missing
        case malformed(String)
        case mismatch
        case sha1NotAllowed

        public var reason: String {
            switch self {
            case .missing: "missing X-Hub-Signature-256 header"
            case .malformed(let why): "malformed signature header: \(why)"
            case .mismatch: "signature does not match any configured secret"
            case .sha1NotAllowed: "only X-Hub-Signature (sha1) was sent and webhook.allow_sha1 is false"
            }
        }
    }

    public var secrets: [WebhookSecret]
    public var allowSHA1: Bool

    public init(secrets: [WebhookSecret], allowSHA1: Bool) {
        self.secrets = secrets
        self.allowSHA1 = allowSHA1
    }

    /// True when no secret is configured, so every delivery is accepted unsigned.
    public var isOpen: Bool { secrets.isEmpty }

    /// Returns a label for the secret that signed `body` ("sha256:/etc/…/webhook"), or throws why not.
    public func verify(sha256 header256: String?, sha1 header1: String?, body: UnsafeRawBufferPointer) throws(Failure) -> String {
        if isOpen { return "none" }
        if let header256 {
            let digest = try Self.parse(header256, prefix: "sha256=", length: 32)
            if let name = match(.sha256, digest, body) { return "sha256:\(name)" }
            throw .mismatch
        }
        guard let header1 else { throw .missing }
        guard allowSHA1 else { throw .sha1NotAllowed }
        let digest = try Self.parse(header1, prefix: "sha1=", length: 20)
        if let name = match(.sha1, digest, body) { return "sha1:\(name)" }
        throw .mismatch
    }

    /// Convenience for byte arrays.
    public func verify(sha256: String?, sha1: String?, body: [UInt8]) throws(Failure) -> String {
        let result = body.withUnsafeBytes { raw in
            Result { () throws(Failure) -> String in try verify(sha256: sha256, sha1: sha1, body: raw) }
        }
        return try result.get()
    }

    private func match(_ algorithm: HMAC.Algorithm, _ digest: [UInt8], _ body: UnsafeRawBufferPointer) -> String? {
        // Every secret is tried, so the time taken does not reveal which one matched.
        var matched: String?
        for secret in secrets where HMAC.constantTimeEqual(HMAC.digest(algorithm, key: secret.key, message: body), digest) {
            matched = matched ?? secret.name
        }
        return matched
    }

    static func parse(_ header: String, prefix: String, length: Int) throws(Failure) -> [UInt8] {
        let trimmed = header.trimmingSpaces
        guard trimmed.utf8.count > prefix.utf8.count,
            trimmed.utf8.prefix(prefix.utf8.count).elementsEqual(prefix.utf8)
        else { throw .malformed("expected \(prefix)<hex>") }
        let hex = trimmed.utf8.dropFirst(prefix.utf8.count)
        guard hex.count == length * 2 else { throw .malformed("expected \(length * 2) hex digits, got \(hex.count)") }
        guard let bytes = [UInt8](hexString: Substring(hex)) else { throw .malformed("not hexadecimal") }
        return bytes
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
