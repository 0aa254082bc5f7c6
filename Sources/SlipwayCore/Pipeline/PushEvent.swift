/// The parts of a GitHub `push` payload the matcher needs.
public struct PushEvent: Sendable, Equatable {
    public var ref: String
    public var before: String
    public var after: String
    public var deleted: Bool
    public var headCommitMessage: String
    /// Added, modified and removed paths of every commit in the push.
    public var changedFiles: [String]
    public var repositoryURLs: [String]
    public var repositoryName: String

    /// `main` for `refs/heads/main`, nil for other refs.
    public var branch: String? { ref.hasPrefix("refs/heads/") ? String(ref.dropFirst(11)) : nil }
    /// `v1.2` for `refs/tags/v1.2`, nil for other refs.
    public var tag: String? { ref.hasPrefix("refs/tags/") ? String(ref.dropFirst(10)) : nil }

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    /// Decodes a stored event's payload (JSON, or a form body's `payload=` as the intake decided).
    public static func decode(_ event: StoredEvent) throws(Invalid) -> PushEvent {
        try decode(payload: event.payload)
    }

    /// Decodes a push payload's JSON: only the fields above are read (`JSONFields`), the rest
    /// (often most of the payload) is skipped. Typed as `JSONDecoder` would with optional fields.
    public static func decode(payload: [UInt8]) throws(Invalid) -> PushEvent {
        var ref: String?
        var before = "", after = "", deleted = false, message = ""
        var files: [String] = []
        var seen = Set<String>()
        var repository: [String: String] = [:]
        do {
            let isObject = try JSONFields.read(payload) { (json: inout JSONFields) throws(JSONFields.Invalid) -> Bool in
                try json.object(at: "the payload") { (key: String, json: inout JSONFields) throws(JSONFields.Invalid) -> Bool in
                    switch key {
                    case "ref": ref = try json.requiredString(at: "ref")
                    case "before": before = try json.string(at: "before") ?? ""
                    case "after": after = try json.string(at: "after") ?? ""
                    case "deleted": deleted = try json.bool(at: "deleted") ?? false
                    case "head_commit":
                        _ = try json.object(at: "head_commit") { (key: String, json: inout JSONFields) throws(JSONFields.Invalid) -> Bool in
                            guard key == "message" else { return false }
                            message = try json.string(at: "head_commit.message") ?? ""
                            return true
                        }
                    case "commits":
                        try json.array(at: "commits") { (json: inout JSONFields) throws(JSONFields.Invalid) in
                            var lists: [String: [String]] = [:]
                            let present = try json.object(at: "commits[]") { (key: String, json: inout JSONFields) throws(JSONFields.Invalid) -> Bool in
                                guard key == "added" || key == "modified" || key == "removed" else { return false }
                                var list: [String] = []
                                try json.array(at: "commits[].\(key)") { (json: inout JSONFields) throws(JSONFields.Invalid) in
                                    list.append(try json.requiredString(at: "commits[].\(key)[]"))
                                }
                                lists[key] = list
                                return true
                            }
                            guard present else { throw JSONFields.Invalid(description: "commits[] is null") }
                            for file in (lists["added"] ?? []) + (lists["modified"] ?? []) + (lists["removed"] ?? []) where seen.insert(file).inserted {
                                files.append(file)
                            }
                        }
                    case "repository":
                        _ = try json.object(at: "repository") { (key: String, json: inout JSONFields) throws(JSONFields.Invalid) -> Bool in
                            switch key {
                            case "full_name", "clone_url", "html_url", "ssh_url", "git_url", "url":
                                repository[key] = try json.string(at: "repository.\(key)")
                                return true
                            default: return false
                            }
                        }
                    default: return false
                    }
                    return true
                }
            }
            guard isObject else { throw JSONFields.Invalid(description: "the payload is null") }
        } catch {
            throw Invalid(description: "push payload cannot be decoded: \(error)")
        }
        guard let ref else { throw Invalid(description: "push payload cannot be decoded: it has no 'ref'") }
        return PushEvent(
            ref: ref, before: before, after: after, deleted: deleted, headCommitMessage: message, changedFiles: files,
            repositoryURLs: ["clone_url", "html_url", "ssh_url", "git_url", "url"].compactMap { repository[$0] },
            repositoryName: repository["full_name"] ?? "")
    }
}
