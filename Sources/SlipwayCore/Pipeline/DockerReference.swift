/// A Docker image reference `[host[:port]/]path[:tag]`, validated by Docker's grammar.
public struct DockerReference: Sendable, Equatable {
    public var registry: String?
    public var repository: String
    public var tag: String?

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    public init(_ text: String) throws(Invalid) {
        func fail(_ why: String) -> Invalid { Invalid(description: "tag '\(text)' is not a valid Docker reference: \(why)") }
        guard !text.isEmpty, text.count <= 255 else { throw fail("empty or longer than 255 characters") }
        var name = Substring(text)
        var tag: String?
        if let colon = name.lastIndex(of: ":"), !name[colon...].contains("/") {
            tag = String(name[name.index(after: colon)...])
            name = name[..<colon]
        }
        if let tag {
            let ok =
                !tag.isEmpty && tag.count <= 128 && tag.first != "." && tag.first != "-"
                && tag.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_.-".contains($0)) }
            guard ok else {
                throw fail("the tag part '\(tag)' must be 1-128 of letters, digits, '_', '.', '-' and not start with '.' or '-'")
            }
        }
        var parts = name.split(separator: "/", omittingEmptySubsequences: false)
        var registry: String?
        if parts.count > 1, let first = parts.first, first.contains(".") || first.contains(":") || first == "localhost" {
            guard first.first != "-", first.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || ".-:[]".contains($0)) }) else {
                throw fail("registry host '\(first)' has invalid characters")
            }
            registry = String(first)
            parts.removeFirst()
        }
        guard !parts.isEmpty else { throw fail("no repository name") }
        for part in parts {
            guard Self.isComponent(part) else {
                throw fail("path component '\(part)' must be lowercase letters and digits, separated by '.', '_', '__' or '-'")
            }
        }
        self.registry = registry
        self.repository = parts.joined(separator: "/")
        self.tag = tag
    }

    static func isComponent(_ s: Substring) -> Bool {
        guard let first = s.first, let last = s.last, isAlnum(first), isAlnum(last) else { return false }
        var previousSeparator = false
        for c in s {
            if isAlnum(c) { previousSeparator = false; continue }
            guard "._-".contains(c) else { return false }
            if previousSeparator && c != "_" && c != "-" { return false }
            previousSeparator = true
        }
        return true
    }

    static func isAlnum(_ c: Character) -> Bool { c.isASCII && (c.isLowercase || c.isNumber) }
}
