import ArgumentParser
import Foundation
import SlipwayCore

#if canImport(Glibc)
    import Glibc
#endif

/// `slipway`: the daemon and the operator's commands in one binary.
@main
struct Slipway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slipway",
        abstract: "A self-hosted build service for signed GitHub push webhooks.",
        subcommands: [Serve.self, ConfigCommand.self, TaskCommand.self, RunCommand.self, LogsCommand.self, EventCommand.self, BackupCommand.self, GitHubCommand.self, EngineCommand.self]
    )

    /// Exit codes of DESIGN.md: 0 ok, 1 the thing failed, 2 usage error, 3 daemon unreachable.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                FileHandleOutput.stderr(fullMessage(for: error))
                Glibc.exit(2)
            }
            exit(withError: error)
        }
    }
}

/// Where the config file is: `--config`, then `SLIPWAY_CONFIG`, then the default path.
struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "The config file (default: $SLIPWAY_CONFIG or /etc/slipway/slipway.yaml).")
    var config: String?

    var path: String {
        config ?? getenv("SLIPWAY_CONFIG").map { String(cString: $0) } ?? SlipwayConfig.defaultPath
    }
}

/// Whole lines to stdout or stderr with one `write(2)` each.
enum FileHandleOutput {
    static func stderr(_ text: String) { UnixIO.writeAll(2, Array((text.hasSuffix("\n") ? text : text + "\n").utf8)) }

    static func stdout(_ text: String) { UnixIO.writeAll(1, Array((text.hasSuffix("\n") ? text : text + "\n").utf8)) }

    /// Bytes as they are (a streamed log), unbuffered.
    static func raw(_ data: Data) { data.withUnsafeBytes { _ = UnixIO.writeAll(1, $0) } }
}
