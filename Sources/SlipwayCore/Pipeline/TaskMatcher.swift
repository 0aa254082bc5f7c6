/// DESIGN.md's matching rules: which tasks a push triggers, and for the others the first reason why not.
public enum TaskMatcher {
    /// The verdict for one task.
    public enum Verdict: Sendable, Equatable {
        case matched
        /// Matched, with what the trace should say about how it is built.
        case matchedNote(String)
        case skipped(String)

        public var isMatch: Bool {
            if case .skipped = self { return false }
            return true
        }

        public var reason: String {
            switch self {
            case .matched: "matched"
            case .matchedNote(let note): "matched: \(note)"
            case .skipped(let r): r
            }
        }
    }

    public static func verdict(task: TaskDefinition, eventType: String, push: PushEvent?) -> Verdict {
        guard task.enabled else { return .skipped("task is disabled") }
        guard eventType == "push" else { return .skipped("'\(eventType)' events do not trigger builds") }
        guard let push else { return .skipped("push payload could not be decoded") }
        if let reason = repositoryReason(task: task, urls: push.repositoryURLs) { return .skipped(reason) }
        if let tag = push.tag {
            guard !task.trigger.tags.isEmpty else { return .skipped("tag push '\(tag)': the task has no trigger.tags") }
            guard task.trigger.tags.contains(where: { Glob($0).matches(tag) }) else {
                return .skipped("tag '\(tag)' matches none of trigger.tags \(task.trigger.tags)")
            }
            if push.deleted { return .skipped("tag '\(tag)' was deleted") }
            if let reason = skipMarker(push.headCommitMessage) { return .skipped(reason) }
            // Tag pushes ignore paths filters: a release is built whatever it changed.
            guard isCommitSHA(push.after) else { return .skipped("push has no 'after' commit") }
            return .matched
        }
        guard let branch = push.branch else { return .skipped("ref '\(push.ref)' is not a branch") }
        guard task.branchGlobs.contains(where: { Glob($0).matches(branch) }) else {
            if task.trigger.branches == nil { return .skipped("branch '\(branch)' is not '\(task.context.branch)'") }
            return .skipped("branch '\(branch)' matches none of trigger.branches \(task.branchGlobs)")
        }
        if push.deleted { return .skipped("branch '\(branch)' was deleted") }
        if let reason = skipMarker(push.headCommitMessage) { return .skipped(reason) }
        if let reason = pathsReason(task: task, files: push.changedFiles) { return .skipped(reason) }
        guard isCommitSHA(push.after) else { return .skipped("push has no 'after' commit") }
        return .matched
    }

    /// The actions of a pull request that build its head.
    public static let pullRequestActions = ["opened", "synchronize", "reopened"]

    public static func verdict(task: TaskDefinition, pullRequest pr: PullRequestEvent?) -> Verdict {
        guard task.enabled else { return .skipped("task is disabled") }
        guard let globs = task.trigger.pullRequestBranches else {
            return .skipped("pull requests do not trigger this task (no trigger.pull_requests)")
        }
        guard let pr else { return .skipped("pull_request payload could not be decoded") }
        if let reason = repositoryReason(task: task, urls: pr.repositoryURLs) { return .skipped(reason) }
        guard pullRequestActions.contains(pr.action) else {
            return .skipped("pull request action '\(pr.action)' builds nothing (only \(pullRequestActions.joined(separator: ", ")) do)")
        }
        guard globs.contains(where: { Glob($0).matches(pr.baseRef) }) else {
            return .skipped("pull request #\(pr.number) into '\(pr.baseRef)' matches none of trigger.pull_requests.branches \(globs)")
        }
        guard isCommitSHA(pr.headSHA), pr.number > 0 else { return .skipped("pull request has no head commit") }
        return .matched
    }

    /// A timer slot or a base-image update queues the tasks it names, on the head of their
    /// context branch as resolved when the event was made.
    public static func verdict(task: TaskDefinition, internalEvent made: InternalEvent, eventSeq: Int64) -> (Verdict, NewRun?) {
        guard let target = made.targets.first(where: { $0.task == task.name }) else {
            return (.skipped("the \(made.kind) event is for \(made.targets.map(\.task).joined(separator: ", "))"), nil)
        }
        guard task.enabled else { return (.skipped("task is disabled"), nil) }
        let trigger: RunTrigger
        switch made.kind {
        case "schedule": trigger = .timer
        case "base_image":
            guard task.trigger.baseImage else { return (.skipped("trigger.base_image is false"), nil) }
            trigger = .baseImage
        default: return (.skipped("'\(made.kind)' events do not trigger builds"), nil)
        }
        guard let commit = target.commit, isCommitSHA(commit) else {
            return (.skipped("cannot resolve the head of branch '\(target.branch)': \(target.error ?? "no commit")"), nil)
        }
        let what = made.kind == "schedule" ? "schedule '\(made.source)' slot \(made.detail)" : "base image \(made.source) changed to \(made.detail)"
        return (
            .matchedNote("\(what); head of \(target.branch) is \(commit.prefix(7))"),
            NewRun(task: task.name, trigger: trigger, eventSeq: eventSeq, repoURL: task.context.url, branch: target.branch, commit: commit)
        )
    }

    static func repositoryReason(task: TaskDefinition, urls: [String]) -> String? {
        let key = task.context.repositoryKey
        guard urls.contains(where: { GitContext.normalize($0) == key }) else {
            let shown = urls.first.map(GitContext.normalize) ?? "an unknown repository"
            return "repository \(shown) is not \(key)"
        }
        return nil
    }

    static func skipMarker(_ message: String) -> String? {
        for marker in ["[skip ci]", "[ci skip]"] where message.contains(marker) { return "head commit message contains \(marker)" }
        return nil
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
        // ASCII hex only: `Character.isHexDigit` also accepts full-width digits, which git does not.
        (s.utf8.count == 40 || s.utf8.count == 64)
            && s.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) || (0x41...0x46).contains($0) }
            && s != String(repeating: "0", count: s.count)
    }
}
