/// The parts of a GitHub `pull_request` payload the matcher needs.
public struct PullRequestEvent: Sendable, Equatable {
    public var action: String
    public var number: Int
    public var headSHA: String
    public var headRef: String
    /// `owner/name` of the repository the head branch lives in (a fork's, for a PR from a fork).
    public var headRepository: String
    public var baseRef: String
    public var baseRepository: String
    /// URLs of the base repository (the task's own): the only place the head is fetched from.
    public var repositoryURLs: [String]

    /// A PR whose head lives in another repository than its base.
    public var isFromFork: Bool { headRepository.lowercased() != baseRepository.lowercased() }

    public static func decode(_ event: StoredEvent) throws(PushEvent.Invalid) -> PullRequestEvent {
        try decode(payload: event.payload)
    }

    /// Decodes a `pull_request` payload's JSON: only the fields above are read (`JSONFields`); the
    /// rest — most of a 20–30 KB payload — is skipped. Typed as `JSONDecoder` with these fields:
    /// `action` and `pull_request` (with its `head` and `base`) are required, the rest optional.
    public static func decode(payload: [UInt8]) throws(PushEvent.Invalid) -> PullRequestEvent {
        var action: String?
        var number: Int?
        var pull: PR?
        var repository: Repository?
        do {
            let isObject = try JSONFields.read(payload) { (json: inout JSONFields) throws(JSONFields.Invalid) -> Bool in
                try json.object(at: "the payload") { (key: String, json: inout JSONFields) throws(JSONFields.Invalid) -> Bool in
                    switch key {
                    case "action": action = try json.requiredString(at: "action")
                    case "number": number = try json.int(at: "number")
                    case "pull_request":
                        var pr = PR()
                        guard try json.object(at: "pull_request", { (key: String, json: inout JSONFields) throws(JSONFields.Invalid) -> Bool in
                            switch key {
                            case "number": pr.number = try json.int(at: "pull_request.number")
                            case "head": pr.head = try Branch.read(&json, at: "pull_request.head")
                            case "base": pr.base = try Branch.read(&json, at: "pull_request.base")
                            default: return false
                            }
                            return true
                        })
                        else { throw JSONFields.Invalid(description: "pull_request is null") }
                        pull = pr
                    case "repository": repository = try Repository.read(&json, at: "repository")
                    default: return false
                    }
                    return true
                }
            }
            guard isObject else { throw JSONFields.Invalid(description: "the payload is null") }
        } catch {
            throw PushEvent.Invalid(description: "pull_request payload cannot be decoded: \(error)")
        }
        func missing(_ key: String) -> PushEvent.Invalid {
            PushEvent.Invalid(description: "pull_request payload cannot be decoded: it has no '\(key)'")
        }
        guard let action else { throw missing("action") }
        guard let pull else { throw missing("pull_request") }
        guard let head = pull.head else { throw missing("pull_request.head") }
        guard let base = pull.base else { throw missing("pull_request.base") }
        let baseRepo = base.repo ?? repository
        return PullRequestEvent(
            action: action, number: number ?? pull.number ?? 0, headSHA: head.sha ?? "", headRef: head.ref ?? "",
            headRepository: head.repo?.fullName ?? "", baseRef: base.ref ?? "", baseRepository: baseRepo?.fullName ?? "",
            repositoryURLs: [baseRepo?.cloneURL, baseRepo?.htmlURL, baseRepo?.sshURL, repository?.cloneURL, repository?.htmlURL]
                .compactMap { $0 })
    }

    private struct PR {
        var number: Int?
        var head: Branch?
        var base: Branch?
    }

    private struct Branch {
        var ref: String?
        var sha: String?
        var repo: Repository?

        /// A branch object (`head` or `base`); `null` is an error, as for a required field.
        static func read(_ json: inout JSONFields, at path: String) throws(JSONFields.Invalid) -> Branch {
            var branch = Branch()
            let present = try json.object(at: path) { (key: String, json: inout JSONFields) throws(JSONFields.Invalid) -> Bool in
                switch key {
                case "ref": branch.ref = try json.string(at: "\(path).ref")
                case "sha": branch.sha = try json.string(at: "\(path).sha")
                case "repo": branch.repo = try Repository.read(&json, at: "\(path).repo")
                default: return false
                }
                return true
            }
            guard present else { throw JSONFields.Invalid(description: "\(path) is null") }
            return branch
        }
    }

    private struct Repository {
        var fullName: String?
        var cloneURL: String?
        var htmlURL: String?
        var sshURL: String?

        /// A repository object, or nil for `null`.
        static func read(_ json: inout JSONFields, at path: String) throws(JSONFields.Invalid) -> Repository? {
            var repository = Repository()
            let present = try json.object(at: path) { (key: String, json: inout JSONFields) throws(JSONFields.Invalid) -> Bool in
                switch key {
                case "full_name": repository.fullName = try json.string(at: "\(path).full_name")
                case "clone_url": repository.cloneURL = try json.string(at: "\(path).clone_url")
                case "html_url": repository.htmlURL = try json.string(at: "\(path).html_url")
                case "ssh_url": repository.sshURL = try json.string(at: "\(path).ssh_url")
                default: return false
                }
                return true
            }
            return present ? repository : nil
        }
    }
}
