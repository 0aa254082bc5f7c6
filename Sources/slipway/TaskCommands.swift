import ArgumentParser
import Foundation
import SlipwayCore

struct TaskCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "task", abstract: "Build tasks: list, show, run by hand, create, update, delete.",
        subcommands: [List.self, Show.self, Run.self, Create.self, Update.self, Delete.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Tasks, with their last run.")
        @OptionGroup var client: ClientOptions
        @Option(help: "table or json.") var output: OutputFormat = .table

        func run() async throws {
            try await withDaemon {
                let tasks = try await client.client.get("/v1/tasks", as: [AdminAPI.Task].self)
                if output == .json { return try printJSON(tasks) }
                printTable(
                    ["NAME", "CONTEXT", "ENABLED", "LAST RUN", "STATUS", "WHEN"],
                    tasks.map {
                        [
                            $0.name, $0.context, $0.enabled ? "yes" : "no", $0.lastRun?.id ?? "-", $0.lastRun?.status ?? "-",
                            $0.lastRun.map { Formatting.relative($0.updatedAt) } ?? "-",
                        ]
                    })
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One task.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The task name.") var name: String
        @Option(help: "table or json.") var output: OutputFormat = .table

        func run() async throws {
            try await withDaemon { try await showTask(client.client, name: name, output: output) }
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queue a run by hand and stream its log; exits 0 only when it succeeds.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The task name.") var name: String
        @Option(help: "Build the head of this branch (default: the task's branch).") var branch: String?
        @Option(help: "Build this commit (full SHA).") var commit: String?
        @Flag(help: "Return right after queueing.") var noLogs = false

        func validate() throws {
            if branch != nil && commit != nil { throw ValidationError("give --branch or --commit, not both") }
        }

        func run() async throws {
            try await withDaemon {
                let queued = try await client.client.post(
                    "/v1/tasks/\(name.urlPathEscaped)/runs", body: AdminAPI.RunRequest(branch: branch, commit: commit),
                    as: AdminAPI.Queued.self)
                FileHandleOutput.stdout("Queued a run with ID: \(queued.runId)")
                if noLogs { return }
                FileHandleOutput.stdout("Waiting for the run to start and streaming its log...")
                try await followToTheEnd(client.client, id: queued.runId)
            }
        }
    }

    /// The task-defining flags shared by create and update.
    struct Definition: ParsableArguments {
        @Option(help: "url#branch:folder") var context: String?
        @Option(name: [.customShort("t"), .customLong("tag")], help: "An image tag (repeatable); templates like {{.Run.ID}} work.")
        var tags: [String] = []
        @Option(name: [.customShort("f"), .customLong("file")], help: "The Dockerfile, relative to the context folder.") var dockerfile:
            String?
        @Option(help: "A file holding the git token for a private repository.") var gitTokenFile: String?
        @Option(name: .customLong("arg"), help: "A build arg K=V (repeatable).") var args: [String] = []
        @Option(name: .customLong("secret-arg"), help: "A secret build arg K=FILE (repeatable); the value is read from FILE.")
        var secretArgs: [String] = []
        @Flag(help: "Build only, do not push.") var noPush = false
        @Option(help: "Like 30m or 1h.") var timeout: String?
        @Option(name: .customLong("trigger-branch"), help: "A branch glob whose pushes build (repeatable; default: the context's branch).")
        var triggerBranches: [String] = []
        @Option(name: .customLong("tags"), help: "A git tag glob whose pushes build, like 'v*' (repeatable).")
        var triggerTags: [String] = []
        @Option(name: .customLong("pr-branch"), help: "Build pull requests into this base branch, never pushed (repeatable).")
        var prBranches: [String] = []
        @Option(name: .customLong("schedule"), help: "A cron expression (5 fields, UTC) that queues a timer run (repeatable).")
        var schedules: [String] = []
        @Flag(help: "Do not rebuild when a base image changes in its registry.") var noBaseImageTrigger = false
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write tasks.d/NAME.yaml beside the config, validate it with the rest, and reload the daemon.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The task name.") var name: String
        @OptionGroup var definition: Definition

        func run() async throws {
            guard definition.context != nil else { throw ValidationError("--context is required") }
            guard !definition.tags.isEmpty else { throw ValidationError("at least one -t/--tag is required") }
            let file = TaskFiles(configPath: client.configPath)
            if FileManager.default.fileExists(atPath: file.path(name)) {
                FileHandleOutput.stderr("error: task '\(name)' already exists in \(file.path(name)); use `slipway task update`")
                throw ExitCode(1)
            }
            try file.write(name: name, yaml: TaskFiles.yaml(name: name, definition: definition, base: nil))
            try await reloadAndShow(client, name: name, verb: "created")
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a task made with `task create` (tasks.d/NAME.yaml) and reload.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The task name.") var name: String
        @OptionGroup var definition: Definition

        func run() async throws {
            let file = TaskFiles(configPath: client.configPath)
            let existing = try file.existing(name)
            try file.write(name: name, yaml: TaskFiles.yaml(name: name, definition: definition, base: existing), replacing: true)
            try await reloadAndShow(client, name: name, verb: "updated")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a task made with `task create` and reload.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The task name.") var name: String

        func run() async throws {
            let file = TaskFiles(configPath: client.configPath)
            _ = try file.existing(name)
            try FileManager.default.removeItem(atPath: file.path(name))
            FileHandleOutput.stdout("Deleted task \(name) (\(file.path(name)))")
            try await withDaemon { _ = try await client.client.request("POST", "/v1/reload") }
        }
    }
}

func showTask(_ client: AdminClient, name: String, output: OutputFormat) async throws {
    let task = try await client.get("/v1/tasks/\(name.urlPathEscaped)", as: AdminAPI.Task.self)
    if output == .json { return try printJSON(task) }
    var lines = [
        "Name         \(task.name)", "Context      \(task.context)", "Dockerfile   \(task.dockerfile)",
        "Tags         \(task.tags.joined(separator: ", "))",
        "Push         \(task.push ? "yes" : "no")", "Enabled      \(task.enabled ? "yes" : "no")", "Timeout      \(task.timeout)",
        "Defined in   \(task.definedIn)\(task.editable ? "" : " (not editable from the CLI)")",
    ]
    if let run = task.lastRun { lines.append("Last run     \(run.id) \(run.status) \(Formatting.relative(run.updatedAt))") }
    if let trigger = task.trigger {
        var parts = ["branches \(trigger.branches.joined(separator: ", "))"]
        if !trigger.tags.isEmpty { parts.append("tags \(trigger.tags.joined(separator: ", "))") }
        if let prs = trigger.pullRequests { parts.append("pull requests into \(prs.joined(separator: ", "))") }
        if !trigger.schedule.isEmpty { parts.append("schedule \(trigger.schedule.joined(separator: "; ")) (UTC)") }
        parts.append(trigger.baseImage ? "base image updates" : "no base image trigger")
        lines.append("Triggers     \(parts.joined(separator: "; "))")
    }
    for image in task.baseImages ?? [] {
        lines.append("Base image   \(image.image) \(image.digest) (from \(image.runId), checked \(Formatting.relative(image.checkedAt)))")
    }
    FileHandleOutput.stdout(lines.joined(separator: "\n"))
}

func reloadAndShow(_ options: ClientOptions, name: String, verb: String) async throws {
    FileHandleOutput.stdout("Task \(name) \(verb): \(TaskFiles(configPath: options.configPath).path(name))")
    try await withDaemon {
        _ = try await options.client.request("POST", "/v1/reload")
        try await showTask(options.client, name: name, output: .table)
    }
}
