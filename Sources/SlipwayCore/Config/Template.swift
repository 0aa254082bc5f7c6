import Foundation

/// A tag or build-arg template: text with `{{.Run.ID}}`-style variables (DESIGN.md's list).
public struct Template: Sendable, Equatable {
    public enum Part: Sendable, Equatable {
        case text(String)
        case variable(String)
    }

    public static let variables = [
        ".Run.ID", ".Commit", ".Commit.Short", ".Branch", ".Tag", ".Task", ".Date", ".Semver", ".Semver.Major", ".Semver.Minor", ".PR",
    ]

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    public let parts: [Part]

    public init(_ text: String) throws(Invalid) {
        var parts: [Part] = []
        var rest = Substring(text)
        while let open = rest.range(of: "{{") {
            if open.lowerBound > rest.startIndex { parts.append(.text(String(rest[..<open.lowerBound]))) }
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                throw Invalid(description: "template '\(text)' has '{{' without a closing '}}'")
            }
            let name = String(rest[open.upperBound..<close.lowerBound]).trimmingSpaces
            guard Self.variables.contains(name) else {
                throw Invalid(
                    description:
                        "unknown template variable '{{\(name)}}' in '\(text)' (known: \(Self.variables.map { "{{\($0)}}" }.joined(separator: ", ")))"
                )
            }
            parts.append(.variable(name))
            rest = rest[close.upperBound...]
        }
        if rest.contains("}}") { throw Invalid(description: "template '\(text)' has '}}' without an opening '{{'") }
        if !rest.isEmpty { parts.append(.text(String(rest))) }
        self.parts = parts
    }

    /// The variables this template uses that have no (or an empty) value in `values`.
    public func emptyVariables(_ values: [String: String]) -> [String] {
        parts.compactMap {
            if case .variable(let v) = $0, (values[v] ?? "").isEmpty { return "{{\(v)}}" }
            return nil
        }
    }

    /// Substitutes `values` (keyed like ".Run.ID"); a missing value renders empty.
    public func render(_ values: [String: String]) -> String {
        parts.map {
            switch $0 {
            case .text(let t): t
            case .variable(let v): values[v] ?? ""
            }
        }.joined()
    }
}
