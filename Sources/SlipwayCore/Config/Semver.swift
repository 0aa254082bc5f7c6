/// A semantic version tag `[v]MAJOR.MINOR.PATCH[-pre][+build]` and the template values it gives.
public struct Semver: Sendable, Equatable {
    public var major: Int
    public var minor: Int
    public var patch: Int
    public var preRelease: String
    public var build: String

    /// Nil when `tag` is no semantic version (`v1.2`, `1.2.3.4`, `latest`, leading zeros).
    public init?(_ tag: String) {
        var text = Substring(tag)
        if text.first == "v" { text = text.dropFirst() }
        var build = ""
        if let plus = text.firstIndex(of: "+") {
            build = String(text[text.index(after: plus)...])
            text = text[..<plus]
            guard Self.isIdentifiers(build, numeric: false) else { return nil }
        }
        var pre = ""
        if let dash = text.firstIndex(of: "-") {
            pre = String(text[text.index(after: dash)...])
            text = text[..<dash]
            guard Self.isIdentifiers(pre, numeric: true) else { return nil }
        }
        let numbers = text.split(separator: ".", omittingEmptySubsequences: false)
        guard numbers.count == 3 else { return nil }
        var values: [Int] = []
        for n in numbers {
            guard !n.isEmpty, n.utf8.allSatisfy({ (0x30...0x39).contains($0) }), n == "0" || n.first != "0", let v = Int(n) else {
                return nil
            }
            values.append(v)
        }
        (major, minor, patch, preRelease, self.build) = (values[0], values[1], values[2], pre, build)
    }

    static func isIdentifiers(_ s: String, numeric: Bool) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        return !parts.isEmpty
            && parts.allSatisfy { part in
                !part.isEmpty
                    && part.utf8.allSatisfy { c in (0x30...0x39).contains(c) || (0x41...0x5a).contains(c) || (0x61...0x7a).contains(c) || c == 0x2d }
                    && !(numeric && part.count > 1 && part.first == "0" && part.allSatisfy(\.isNumber))
            }
    }

    /// `1.2.3` (`2.0.0-rc.1` with a pre-release; build metadata is not a valid Docker tag part).
    public var version: String { "\(major).\(minor).\(patch)" + (preRelease.isEmpty ? "" : "-\(preRelease)") }

    /// `{{.Semver}}`, and for a release (no pre-release) `{{.Semver.Major}}`/`{{.Semver.Minor}}`.
    public var templateValues: [String: String] {
        var values = [".Semver": version]
        if preRelease.isEmpty {
            values[".Semver.Major"] = "\(major)"
            values[".Semver.Minor"] = "\(major).\(minor)"
        }
        return values
    }
}
