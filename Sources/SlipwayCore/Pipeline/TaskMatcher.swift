/// DESIGN.md's matching rules: which tasks a push triggers, and for the others the first reason why not.
public enum TaskMatcher {
    /// The verdict for one task.
    public enum Verdict: Sendable, Equatable {
        case matched
        case skipped(String)

        public var reason: String {
            switch self {
            case .matched: "matched"
            case .skipped(let r): r
            }
        }
    }

    public static func verdict(task: TaskDefinition, eventType: String, push: PushEvent?) -> Verdict {
        guard task.enabled else { return .skipped("task is disabled") }
        guard eventType == "push" else { return .skipped("'\(eventType)' events do not trigger builds") }
        guard let push else { return .skipped("push payload could not be decoded") }
        let key = task.context.repositoryKey
        guard push.repositoryURLs.contains(where: { GitContext.normalize($0) == key }) else {
            let shown = push.repositoryURLs.first.map(GitContext.normalize) ?? "an unknown repository"
            return .skipped("repository \(shown) is not \(key)")
        }
        if let tag = push.tag { return .skipped("tag push '\(tag)': task builds branch '\(task.context.branch)'") }
        guard let branch = push.branch else { return .skipped("ref '\(push.ref)' is not a branch") }
        guard branch == task.context.branch else { return .skipped("branch '\(branch)' is not '\(task.context.branch)'") }
        if push.deleted { return .skipped("branch '\(branch)' was deleted") }
        for marker in ["[skip ci]", "[ci skip]"] where push.headCommitMessage.contains(marker) {
            return .skipped("head commit message contains \(marker)")
        }
        if let reason = pathsReason(task: task, files: push.changedFiles) { return .skipped(reason) }
        guard isCommitSHA(push.after) else { return .skipped("push has no 'after' commit") }
        return .matched
    }

    /// Nil when the changed files concern the task (or are unknown); else why not.
    static func pathsReason(task: TaskDefinition, files: [String]) -> String? {
        guard !files.isEmpty else { return nil }
        let folder = task.context.folder
        let include = task.paths.include.map(Glob.init)
        let exclude = task.paths.exclude.map(Glob.init)
        let relevant = files.filter { file in
            (folder.isEmpty || file.hasPrefix(folder + "/"))
                && (include.isEmpty || include.contains { $0.matches(file) })
                && !exclude.contains { $0.matches(file) }
        }
        guard relevant.isEmpty else { return nil }
        var filters: [String] = []
        if !folder.isEmpty { filters.append("folder '\(folder)'") }
        if !include.isEmpty { filters.append("paths.include \(task.paths.include)") }
        if !exclude.isEmpty { filters.append("paths.exclude \(task.paths.exclude)") }
        return "none of the \(files.count) changed file\(files.count == 1 ? "" : "s") pass \(filters.joined(separator: ", "))"
    }

    public static func isCommitSHA(_ s: String) -> Bool {
        (s.count == 40 || s.count == 64) && s.allSatisfy { $0.isHexDigit } && s != String(repeating: "0", count: s.count)
    }
}
