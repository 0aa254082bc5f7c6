import Yams

/// A YAML node with its file and key path, so every error can say where it is.
struct YAMLNode {
    let node: Node
    let file: String
    let path: String
    let problems: ProblemList

    var line: Int { node.mark?.line ?? 0 }

    func fail(_ message: String) {
        problems.add(ConfigError(file: file, line: line, key: path, message: message))
    }

    /// The mapping's values by key, reporting keys not in `allowed` (with a suggestion) and duplicates.
    func mapping(allowed: [String]) -> [String: YAMLNode]? {
        guard let mapping = node.mapping else {
            fail("expected a mapping (key: value), got \(kind)")
            return nil
        }
        var out: [String: YAMLNode] = [:]
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else {
                YAMLNode(node: keyNode, file: file, path: path, problems: problems).fail("keys must be strings")
                continue
            }
            let child = self.child(key, value)
            guard allowed.contains(key) else {
                var message = "unknown key '\(key)'"
                if let guess = Self.closest(to: key, in: allowed) { message += " (did you mean '\(guess)'?)" }
                YAMLNode(node: keyNode, file: file, path: child.path, problems: problems).fail(message)
                continue
            }
            out[key] = child
        }
        return out
    }

    /// Secrets are only ever read from files: the file must exist, be readable and hold something.
    func checkSecretFile(_ path: String) {
        do {
            _ = try FileText.readSecret(path)
        } catch {
            fail("cannot read secret file \(error)")
        }
    }

    func child(_ key: String, _ value: Node) -> YAMLNode {
        YAMLNode(node: value, file: file, path: path.isEmpty ? key : "\(path).\(key)", problems: problems)
    }

    func element(_ index: Int, _ value: Node) -> YAMLNode {
        YAMLNode(node: value, file: file, path: "\(path)[\(index)]", problems: problems)
    }

    var kind: String {
        switch node {
        case .scalar(let s): s.string.isEmpty ? "an empty value" : "'\(s.string)'"
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }

    var string: String? {
        guard case .scalar(let scalar) = node, !(scalar.style == .plain && ["~", "null", "Null", "NULL"].contains(scalar.string)) else {
            fail("expected a string, got \(kind)")
            return nil
        }
        return scalar.string
    }

    func nonEmptyString() -> String? {
        guard let s = string else { return nil }
        if s.isEmpty { fail("must not be empty") }
        return s.isEmpty ? nil : s
    }

    var bool: Bool? {
        guard case .scalar(let s) = node else { fail("expected true or false, got \(kind)"); return nil }
        switch s.string {
        case "true": return true
        case "false": return false
        default:
            fail("expected true or false, got '\(s.string)'")
            return nil
        }
    }

    func int(min: Int, max: Int) -> Int? {
        guard case .scalar(let s) = node, let value = Int(s.string.replacingUnderscores) else {
            fail("expected a whole number, got \(kind)")
            return nil
        }
        guard value >= min, value <= max else {
            fail("must be between \(min) and \(max), got \(value)")
            return nil
        }
        return value
    }

    var duration: Duration? {
        guard let text = string else { return nil }
        do {
            return try DurationParser.parse(text)
        } catch {
            fail("\(error)")
            return nil
        }
    }

    func list() -> [YAMLNode]? {
        guard case .sequence(let seq) = node else {
            fail("expected a list, got \(kind)")
            return nil
        }
        return seq.enumerated().map { element($0.offset, $0.element) }
    }

    func stringList() -> [String]? {
        guard let items = list() else { return nil }
        let strings = items.compactMap { $0.nonEmptyString() }
        return strings.count == items.count ? strings : nil
    }

    /// A mapping of string to string, in file order.
    func stringMap() -> [(key: String, value: String, node: YAMLNode)]? {
        guard let mapping = node.mapping else {
            fail("expected a mapping (key: value), got \(kind)")
            return nil
        }
        var out: [(String, String, YAMLNode)] = []
        for (k, v) in mapping {
            guard let key = k.string, !key.isEmpty else {
                fail("keys must be non-empty strings")
                continue
            }
            let child = child(key, v)
            guard case .scalar(let s) = v else {
                child.fail("expected a string, got \(child.kind)")
                continue
            }
            out.append((key, s.string, child))
        }
        return out
    }

    /// The allowed key nearest to a typo, when it is close enough to be a likely slip.
    static func closest(to key: String, in allowed: [String]) -> String? {
        let scored = allowed.map { ($0, editDistance(key, $0)) }.min { $0.1 < $1.1 }
        guard let (best, distance) = scored, distance <= max(2, key.count / 3) else { return nil }
        return best
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in stride(from: 1, through: b.count, by: 1) {
                current[j] = Swift.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}

/// Collects problems while a config is read, so all of them are reported together.
final class ProblemList {
    var errors: [ConfigError] = []
    func add(_ error: ConfigError) { errors.append(error) }
}

extension String {
    var replacingUnderscores: String { String(filter { $0 != "_" }) }
}
