import ArgumentParser
import Foundation
import SlipwayCore

/// `slipway github hook create|list|delete --repo OWNER/NAME`, through the daemon (which holds the token).
struct GitHubCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "github", abstract: "Work with GitHub.", subcommands: [Hook.self])

    struct Hook: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The repository webhook that points at this Slipway (<public_url>/webhooks/github).",
            subcommands: [Create.self, List.self, Delete.self])
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the webhook (JSON, the first webhook secret, push and pull_request), or update ours.")
        @OptionGroup var client: ClientOptions
        @Option(help: "OWNER/NAME") var repo: String
        @Option(help: "table or json.") var output: OutputFormat = .table

        func run() async throws {
            try await withDaemon {
                let hook = try await client.client.post("/v1/github/hooks?repo=\(repo.urlQueryEscaped)", body: Empty(), as: AdminAPI.GitHubHook.self)
                if output == .json { return try printJSON(hook) }
                FileHandleOutput.stdout("\(hook.created ? "Created" : "Updated") webhook \(hook.id) on \(hook.repo): \(hook.url) (\(hook.events.joined(separator: ", ")))")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Our webhook on the repository (other services' hooks are not shown).")
        @OptionGroup var client: ClientOptions
        @Option(help: "OWNER/NAME") var repo: String
        @Option(help: "table or json.") var output: OutputFormat = .table

        func run() async throws {
            try await withDaemon {
                let hooks = try await client.client.get("/v1/github/hooks?repo=\(repo.urlQueryEscaped)", as: [AdminAPI.GitHubHook].self)
                if output == .json { return try printJSON(hooks) }
                if hooks.isEmpty { return FileHandleOutput.stdout("\(repo) has no webhook pointing at this Slipway") }
                for hook in hooks {
                    FileHandleOutput.stdout("\(hook.id)  \(hook.url)  \(hook.events.joined(separator: ","))  \(hook.active ? "active" : "inactive")")
                }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete our webhook from the repository.")
        @OptionGroup var client: ClientOptions
        @Option(help: "OWNER/NAME") var repo: String

        func run() async throws {
            try await withDaemon {
                let hook = try await client.client.delete("/v1/github/hooks?repo=\(repo.urlQueryEscaped)", as: AdminAPI.GitHubHook.self)
                FileHandleOutput.stdout("Deleted webhook \(hook.id) from \(hook.repo)")
            }
        }
    }

    struct Empty: Codable {}
}
