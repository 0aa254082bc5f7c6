/// Replaces every known secret value with `***` before text reaches a log.
public struct SecretMasker: Sendable {
    public private(set) var secrets: [String]

    public init(_ secrets: [String] = []) {
        self.secrets = []
        for s in secrets { add(s) }
    }

    /// Adds a value; very short values are still masked (a leak of a short token is still a leak).
    /// A value of several lines (a key file, a JSON credential) is also masked line by line, since
    /// logs are written a line at a time: every line of 6 or more characters.
    public mutating func add(_ secret: String) {
        let trimmed = secret.trimmingSpaces
        guard !trimmed.isEmpty else { return }
        let lines = trimmed.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).map { String($0).trimmingSpaces }
        if lines.count > 1 {
            for line in lines where line.count >= 6 { insert(line) }
        }
        insert(trimmed)
    }

    private mutating func insert(_ secret: String) {
        guard !secrets.contains(secret) else { return }
        secrets.append(secret)
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
