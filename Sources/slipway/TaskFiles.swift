import ArgumentParser
import Foundation
import Yams
import SlipwayCore

/// `tasks.d/NAME.yaml` beside the config: written only after the whole config validates with it.
struct TaskFiles {
    let configPath: String

    var directory: String { FileText.directory(of: FileText.absolute(configPath)) + "/tasks.d" }
    func path(_ name: String) -> String { "\(directory)/\(name).yaml" }

    /// The task as loaded now; it must come from tasks.d (tasks in the main file are the operator's to edit).
    func existing(_ name: String) throws -> TaskDefinition {
        let config: SlipwayConfig
        do {
            config = try ConfigLoader.load(path: configPath)
        } catch {
            for problem in error.errors { FileHandleOutput.stderr(problem.description) }
            throw ExitCode(1)
        }
        guard let task = config.tasks.first(where: { $0.name == name }) else {
            FileHandleOutput.stderr("error: no task named '\(name)'")
            throw ExitCode(1)
        }
        guard task.definedIn == path(name) else {
            FileHandleOutput.stderr(
                "error: task '\(name)' is defined in \(task.definedIn):\(task.line); edit that file (the CLI changes only tasks.d/ files)")
            throw ExitCode(1)
        }
        return task
    }

    /// Validates the config with `yaml` as `tasks.d/NAME.yaml`, then writes it atomically; on any problem writes nothing.
    func write(name: String, yaml: String, replacing: Bool = false) throws {
        let target = path(name)
        let main: String
        do {
            main = try FileText.read(FileText.absolute(configPath))
        } catch {
            FileHandleOutput.stderr("error: cannot read the config: \(error)")
            throw ExitCode(1)
        }
        var files = FileText.list(directory, suffix: ".yaml").filter { $0 != target }.compactMap { f in
            (try? FileText.read(f)).map { (f, $0) }
        }
        files.append((target, yaml))
        files.sort { $0.0 < $1.0 }
        do {
            _ = try ConfigLoader.parse(main, file: FileText.absolute(configPath), taskFiles: files)
        } catch {
            for problem in error.errors { FileHandleOutput.stderr(problem.description) }
            FileHandleOutput.stderr("nothing was written")
            throw ExitCode(1)
        }
        do {
            try FileText.makeDirectories(directory, mode: 0o755)
            let temporary = "\(directory)/.\(name).yaml.tmp"
            try yaml.write(toFile: temporary, atomically: false, encoding: .utf8)
            if rename(temporary, target) != 0 { throw FileText.Failure(path: target, reason: String(cString: strerror(errno))) }
        } catch {
            FileHandleOutput.stderr("error: cannot write \(target): \(error)")
            throw ExitCode(1)
        }
    }

    /// YAML for one task from the CLI flags, over `base` for an update (written by Yams, so any
    /// value — quotes, colons, `{{…}}` — comes out as a well-formed scalar).
    static func yaml(name: String, definition d: TaskCommand.Definition, base: TaskDefinition?) throws -> String {
        func pairs(_ items: [String], flag: String) throws -> [(String, String)] {
            try items.map { item in
                guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                    throw ValidationError("\(flag) needs K=V, got '\(item)'")
                }
                return (String(item[..<eq]), String(item[item.index(after: eq)...]))
            }
        }
        func string(_ s: String) -> Node { Node(s, .implicit, .doubleQuoted) }
        func list(_ items: [String]) -> Node { .sequence(.init(items.map(string), .implicit, .flow)) }
        func map(_ items: [(String, String)]) -> Node { .mapping(.init(items.map { (Node($0.0), string($0.1)) }, .implicit, .flow)) }
        var root: [(Node, Node)] = []
        func add(_ key: String, _ value: Node) { root.append((Node(key), value)) }

        let context = d.context ?? base.map { $0.context.description } ?? ""
        let tags = d.tags.isEmpty ? (base?.tags ?? []) : d.tags
        add("name", string(name))
        add("context", string(context))
        add("tags", list(tags))
        if let f = d.dockerfile ?? base?.dockerfile { add("dockerfile", string(f)) }
        if let token = d.gitTokenFile.map(FileText.absolute) ?? base?.gitTokenFile { add("git_token_file", string(token)) }
        let args = d.args.isEmpty ? (base?.buildArgs.map { ($0.key, $0.value) } ?? []) : try pairs(d.args, flag: "--arg")
        if !args.isEmpty { add("build_args", map(args)) }
        let secrets =
            d.secretArgs.isEmpty
            ? (base?.secretBuildArgs.map { ($0.key, $0.value) } ?? [])
            : try pairs(d.secretArgs, flag: "--secret-arg").map { ($0.0, FileText.absolute($0.1)) }
        if !secrets.isEmpty { add("secret_build_args", map(secrets)) }
        add("push", Node(d.noPush ? "false" : "\(base?.push ?? true)"))
        if let t = d.timeout ?? base?.timeout.map(DurationParser.format) { add("timeout", string(t)) }
        if let base {
            // What the flags cannot say is kept from the file being updated.
            if !base.paths.include.isEmpty || !base.paths.exclude.isEmpty {
                add("paths", .mapping(.init([(Node("include"), list(base.paths.include)), (Node("exclude"), list(base.paths.exclude))])))
            }
            if base.noCache { add("no_cache", Node("true")) }
            if !base.enabled { add("enabled", Node("false")) }
        }
        var trigger: [(Node, Node)] = []
        let old = base?.trigger
        if let branches = d.triggerBranches.isEmpty ? old?.branches : d.triggerBranches { trigger.append((Node("branches"), list(branches))) }
        let triggerTags = d.triggerTags.isEmpty ? (old?.tags ?? []) : d.triggerTags
        if !triggerTags.isEmpty { trigger.append((Node("tags"), list(triggerTags))) }
        if let prs = d.prBranches.isEmpty ? old?.pullRequestBranches : d.prBranches {
            trigger.append((Node("pull_requests"), .mapping(.init([(Node("branches"), list(prs))], .implicit, .flow))))
        }
        if d.noBaseImageTrigger || old?.baseImage == false { trigger.append((Node("base_image"), Node("false"))) }
        let schedules = d.schedules.isEmpty ? (old?.schedule.map(\.text) ?? []) : d.schedules
        if !schedules.isEmpty { trigger.append((Node("schedule"), list(schedules))) }
        if !trigger.isEmpty { add("trigger", .mapping(.init(trigger))) }
        let header = "# Written by `slipway task create`; edit with `slipway task update \(name)`.\n"
        return header + (try Yams.serialize(node: .mapping(.init(root))))
    }
}
