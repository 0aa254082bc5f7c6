import ArgumentParser
import Foundation
import SlipwayCore

struct EventCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "event", abstract: "The event log, match traces, and replay.", subcommands: [List.self, Show.self, Replay.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Deliveries, newest first.")
        @OptionGroup var client: ClientOptions
        @Option(help: "How many events.") var top = 15
        @Option(help: "table or json.") var output: OutputFormat = .table

        func run() async throws {
            try await withDaemon {
                let events = try await client.client.get("/v1/events?top=\(top)", as: [AdminAPI.Event].self)
                if output == .json { return try printJSON(events) }
                printTable(
                    ["SEQ", "TYPE", "DELIVERY", "REPOSITORY", "REF", "COMMIT", "RECEIVED"],
                    events.map {
                        [
                            "\($0.seq)", $0.type, $0.delivery, $0.repository ?? "-", $0.ref ?? "-", $0.after.map(Formatting.short) ?? "-",
                            Formatting.relative($0.receivedAt),
                        ]
                    })
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One event and its match trace: for each task, matched or why not.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The event's seq.") var seq: Int64
        @Flag(help: "Include the payload as received.") var payload = false
        @Option(help: "table or json.") var output: OutputFormat = .table

        func run() async throws {
            try await withDaemon {
                let event = try await client.client.get("/v1/events/\(seq)\(payload ? "?payload=1" : "")", as: AdminAPI.Event.self)
                if output == .json { return try printJSON(event) }
                printEvent(event)
            }
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Match a stored event again against the current tasks (trigger 'replay').")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The event's seq.") var seq: Int64
        @Option(help: "table or json.") var output: OutputFormat = .table

        func run() async throws {
            try await withDaemon {
                let event = try AdminAPI.decoder.decode(
                    AdminAPI.Event.self, from: await client.client.request("POST", "/v1/events/\(seq)/replay").body)
                if output == .json { return try printJSON(event) }
                printEvent(event)
                let queued = (event.trace ?? []).compactMap(\.runId)
                FileHandleOutput.stdout(
                    queued.isEmpty ? "No run queued." : queued.map { "Queued a run with ID: \($0)" }.joined(separator: "\n"))
            }
        }
    }
}

func printEvent(_ event: AdminAPI.Event) {
    var lines = [
        "Seq          \(event.seq)", "Type         \(event.type)", "Delivery     \(event.delivery)",
        "Hook ID      \(event.hookId.isEmpty ? "-" : event.hookId)",
        "Received     \(event.receivedAt) (\(Formatting.relative(event.receivedAt)))",
        "Signature    \(event.signature)",
    ]
    if let repo = event.repository { lines.append("Repository   \(repo)") }
    if let ref = event.ref { lines.append("Ref          \(ref)") }
    if let after = event.after { lines.append("Commit       \(after)") }
    FileHandleOutput.stdout(lines.joined(separator: "\n"))
    if let trace = event.trace {
        FileHandleOutput.stdout("")
        if trace.isEmpty {
            FileHandleOutput.stdout("Match trace: no tasks were configured when it was matched.")
        } else {
            printTable(
                ["TASK", "MATCHED", "RUN", "REASON"], trace.map { [$0.task, $0.matched ? "yes" : "no", $0.runId ?? "-", $0.reason] })
        }
    }
    if let payload = event.payload { FileHandleOutput.stdout("\n" + payload) }
}
