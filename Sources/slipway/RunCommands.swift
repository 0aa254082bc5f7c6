import ArgumentParser
import Foundation
import SlipwayCore

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "List, inspect and cancel runs.", subcommands: [List.self, Show.self, Cancel.self, RetryPush.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Runs, newest first.")
        @OptionGroup var client: ClientOptions
        @Option(help: "Only this task's runs.") var task: String?
        @Option(help: "Only runs with this status (Queued, Running, Succeeded, Failed, Canceled, Timeout, Error).") var status: String?
        @Option(help: "How many runs.") var top = 15
        @Option(help: "table or json.") var output: OutputFormat = .table

        func run() async throws {
            var query = ["top=\(top)"]
            if let task { query.append("task=\(task.urlQueryEscaped)") }
            if let status { query.append("status=\(status.urlQueryEscaped)") }
            try await withDaemon {
                let runs = try await client.client.get("/v1/runs?" + query.joined(separator: "&"), as: [AdminAPI.Run].self)
                if output == .json { return try printJSON(runs) }
                printTable(
                    ["RUN ID", "TASK", "STATUS", "TRIGGER", "COMMIT", "BRANCH", "STARTED", "DURATION"],
                    runs.map {
                        [
                            $0.id, $0.task, $0.status, $0.trigger, Formatting.short($0.commit), $0.branch,
                            Formatting.relative($0.createdAt), Formatting.duration($0.durationSeconds),
                        ]
                    })
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One run: status, images and digests, step durations.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The run ID, like sw7.") var id: String
        @Option(help: "table or json.") var output: OutputFormat = .table

        func run() async throws {
            try await withDaemon {
                let run = try await client.client.get("/v1/runs/\(id.urlPathEscaped)", as: AdminAPI.Run.self)
                if output == .json { return try printJSON(run) }
                printRun(run)
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a queued run at once, or stop a running one (TERM, then KILL).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The run ID.") var id: String

        func run() async throws {
            try await withDaemon {
                let run = try AdminAPI.decoder.decode(
                    AdminAPI.Run.self, from: await client.client.request("POST", "/v1/runs/\(id.urlPathEscaped)/cancel").body)
                FileHandleOutput.stdout("Run \(run.id): \(run.status)\(run.reason.isEmpty ? "" : " (\(run.reason))")")
            }
        }
    }

    struct RetryPush: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "retry-push",
            abstract: "Push the images of a run whose push failed (registry down), without building again.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The run ID.") var id: String
        @Flag(help: "Return right after queueing.") var noLogs = false

        func run() async throws {
            try await withDaemon {
                _ = try await client.client.post("/v1/runs/\(id.urlPathEscaped)/retry-push", body: [String: String](), as: AdminAPI.Queued.self)
                FileHandleOutput.stdout("Queued the push of run \(id) again")
                if noLogs { return }
                try await followToTheEnd(client.client, id: id)
            }
        }
    }
}

func printRun(_ run: AdminAPI.Run) {
    var rows: [(String, String)] = [
        ("Run ID", run.id), ("Task", run.task), ("Status", run.status), ("Trigger", run.trigger),
        ("Commit", run.commit), ("Branch", run.branch), ("Attempt", "\(run.attempt)"),
        ("Queued", "\(run.createdAt) (\(Formatting.relative(run.createdAt)))"),
        ("Updated", "\(run.updatedAt) (\(Formatting.relative(run.updatedAt)))"),
    ]
    if let started = run.startedAt { rows.append(("Started", "\(started) (\(Formatting.relative(started)))")) }
    if let finished = run.finishedAt { rows.append(("Finished", "\(finished) (\(Formatting.relative(finished)))")) }
    if let event = run.event { rows.append(("Event", "\(event)")) }
    if !run.step.isEmpty { rows.append(("Step", run.step)) }
    if !run.reason.isEmpty { rows.append(("Reason", run.reason)) }
    if let code = run.exitCode { rows.append(("Exit code", "\(code)")) }
    for step in ["fetch", "checkout", "build", "push"] {
        if let d = run.durations[step] { rows.append(("Duration \(step)", Formatting.duration(d))) }
    }
    for image in run.images { rows.append(("Image", image.digest.isEmpty ? "\(image.tag) (not pushed)" : "\(image.tag)@\(image.digest)")) }
    if !run.engine.isEmpty { rows.append(("Engine", run.engine)) }
    if let who = run.requestedBy { rows.append(("Requested by", who)) }
    for status in run.statuses ?? [] {
        let delivery =
            switch status.delivery {
            case "delivered": "delivered"
            case "gave_up": "not delivered: \(status.lastDetail ?? "given up")"
            default: status.attempts > 0 ? "retrying (\(status.attempts) attempts; \(status.lastDetail ?? ""))" : "pending delivery"
            }
        rows.append(("GitHub status", "\(status.context) \(status.state) \"\(status.description)\" — \(delivery)"))
    }
    let width = rows.map(\.0.count).max() ?? 0
    FileHandleOutput.stdout(rows.map { "\($0.0.padding(toLength: width, withPad: " ", startingAt: 0))  \($0.1)" }.joined(separator: "\n"))
}

struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs", abstract: "A run's log; by default the most recently updated run.")
    @OptionGroup var client: ClientOptions
    @Option(help: "The run ID.") var runId: String?
    @Option(help: "The latest run of this task.") var task: String?
    @Flag(help: "Keep streaming until the run ends.") var follow = false

    func validate() throws {
        if runId != nil && task != nil { throw ValidationError("give --run-id or --task, not both") }
    }

    func run() async throws {
        try await withDaemon {
            let id: String
            if let runId {
                id = runId
            } else {
                let query = task.map { "?task=\($0.urlQueryEscaped)" } ?? ""
                id = try await client.client.get("/v1/runs/latest" + query, as: AdminAPI.Run.self).id
            }
            try await streamLog(client.client, id: id, follow: follow)
        }
    }
}

/// Streams the run's log until it ends; exits 1 unless it succeeded.
func followToTheEnd(_ client: AdminClient, id: String) async throws {
    try await streamLog(client, id: id, follow: true)
    let run = try await client.get("/v1/runs/\(id.urlPathEscaped)", as: AdminAPI.Run.self)
    if run.status != RunStatus.succeeded.rawValue { throw ExitCode(1) }
}

/// Writes the run's log to stdout as it arrives.
func streamLog(_ client: AdminClient, id: String, follow: Bool) async throws {
    // Build output's terminal escapes (colours, cursor moves) are removed: they are not ours to replay.
    try await client.request("GET", "/v1/runs/\(id.urlPathEscaped)/log\(follow ? "?follow=1" : "")") { chunk in
        FileHandleOutput.raw(Data(TerminalText.strip(String(decoding: chunk, as: UTF8.self)).utf8))
    }
}

extension String {
    var urlQueryEscaped: String {
        addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-_.~"))) ?? self
    }
    var urlPathEscaped: String {
        addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-_.~"))) ?? self
    }
}
