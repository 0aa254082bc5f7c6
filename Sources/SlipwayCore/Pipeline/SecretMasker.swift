/// Replaces every known secret value with `***` before text reaches a log.
public struct SecretMasker: Sendable {
    public private(set) var secrets: [String]

    public init(_ secrets: [String] = []) {
        self.secrets = []
        for s in secrets { add(s) }
    }

    /// Adds a value; very short values are still masked (a leak of a short token is still a leak).
    public mutating func add(_ secret: String) {
        let trimmed = secret.trimmingSpaces
        guard !trimmed.isEmpty, !secrets.contains(trimmed) else { return }
        secrets.append(trimmed)
        // Longest first, so a secret containing another is masked whole.
        secrets.sort { $0.count > $1.count }
    }

    public func mask(_ text: String) -> String {
        var out = text
        for secret in secrets where out.contains(secret) {
            out = out.split(separator: secret, omittingEmptySubsequences: false).joined(separator: "***")
        }
        return out
    }
}

extension String {
    func split(separator: String, omittingEmptySubsequences: Bool) -> [Substring] {
        var parts: [Substring] = []
        var rest = self[...]
        while let range = rest.firstRange(of: separator) {
            parts.append(rest[..<range.lowerBound])
            rest = rest[range.upperBound...]
        }
        parts.append(rest)
        return omittingEmptySubsequences ? parts.filter { !$0.isEmpty } : parts
    }
}
