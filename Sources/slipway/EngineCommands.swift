import ArgumentParser
import Foundation
import SlipwayCore

/// `slipway engine list`: the Docker engines builds run on.
struct EngineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "engine", abstract: "The Docker engines builds run on.", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Engines: state, load, labels, last error.")
        @OptionGroup var client: ClientOptions
        @Option(help: "table or json.") var output: OutputFormat = .table

        func run() async throws {
            try await withDaemon {
                let engines = try await client.client.get("/v1/engines", as: [AdminAPI.Engine].self)
                if output == .json { return try printJSON(engines) }
                var lines = ["NAME  STATE  RUNNING  HOST  LABELS  LAST ERROR"]
                for e in engines {
                    lines.append(
                        "\(e.name)  \(e.state)  \(e.running)/\(e.maxConcurrent)  \(e.host)  \(e.labels.joined(separator: ","))  \(e.lastError ?? "")")
                }
                FileHandleOutput.stdout(lines.joined(separator: "\n"))
            }
        }
    }
}
