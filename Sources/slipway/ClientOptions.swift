import ArgumentParser
import Yams
import Foundation
import SlipwayCore

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

/// How the CLI finds the daemon: `--socket`, `$SLIPWAY_SOCKET`, the config's `admin_socket`, the default path.
struct ClientOptions: ParsableArguments {
    @Option(help: "The admin socket (default: $SLIPWAY_SOCKET, else admin_socket from the config, else /run/slipway/slipway.sock).")
    var socket: String?

    @Option(help: "The config file, to find admin_socket (default: $SLIPWAY_CONFIG or /etc/slipway/slipway.yaml).")
    var config: String?

    var configPath: String {
        config ?? ProcessInfo.processInfo.environment["SLIPWAY_CONFIG"] ?? SlipwayConfig.defaultPath
    }

    var socketPath: String {
        if let socket { return socket }
        if let env = ProcessInfo.processInfo.environment["SLIPWAY_SOCKET"], !env.isEmpty { return env }
        if let fromConfig = Self.adminSocket(in: configPath) { return fromConfig }
        return "/run/slipway/slipway.sock"
    }

    var client: AdminClient { AdminClient(socketPath: socketPath) }

    /// `admin_socket` from the config without validating the rest (the CLI user may not read the secrets).
    static func adminSocket(in path: String) -> String? {
        // Composed by Yams (every scalar a string): quoting, comments and flow style as YAML has them.
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
            let root = try? Yams.compose(yaml: text, .basic), let value = root["admin_socket"]?.string, !value.isEmpty
        else { return nil }
        return FileText.resolve(value, against: FileText.directory(of: FileText.absolute(path)))
    }
}

/// Runs a client command, turning failures into DESIGN.md's exit codes: 1 failed, 3 daemon unreachable.
func withDaemon(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as AdminClient.Unreachable {
        FileHandleOutput.stderr("error: \(error)")
        throw ExitCode(3)
    } catch let error as AdminClient.Refused {
        FileHandleOutput.stderr("error: \(error.message)")
        throw ExitCode(1)
    }
}

/// Prints a value as one JSON document.
func printJSON(_ value: some Encodable) throws {
    FileHandleOutput.stdout(String(decoding: try AdminAPI.encoder.encode(value), as: UTF8.self))
}

/// Aligned columns with a header row.
func printTable(_ header: [String], _ rows: [[String]]) {
    var widths = header.map(\.count)
    for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, cell in i == cells.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
    }
    var out = line(header)
    for row in rows { out += "\n" + line(row) }
    FileHandleOutput.stdout(out)
}

enum Formatting {
    nonisolated(unsafe) static let iso: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }()

    /// "12s ago", "3m ago", "5h ago", "2d ago".
    static func relative(_ iso8601: String, now: Date = Date()) -> String {
        guard let date = iso.date(from: iso8601) else { return iso8601 }
        let s = max(0, Int(now.timeIntervalSince(date)))
        switch s {
        case ..<60: return "\(s)s ago"
        case ..<3600: return "\(s / 60)m ago"
        case ..<86400: return "\(s / 3600)h ago"
        default: return "\(s / 86400)d ago"
        }
    }

    /// "0.4s", "51.8s", "2m3s".
    static func duration(_ seconds: Double) -> String {
        if seconds < 60 { return String(format: "%.1fs", seconds) }
        let s = Int(seconds.rounded())
        return s < 3600 ? "\(s / 60)m\(s % 60)s" : "\(s / 3600)h\((s % 3600) / 60)m"
    }

    static func short(_ commit: String) -> String { String(commit.prefix(7)) }
}
