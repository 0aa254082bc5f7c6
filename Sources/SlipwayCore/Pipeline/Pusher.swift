import Foundation

/// `docker push` of each tag with retries on transient registry failures, collecting digests.
struct Pusher: Sendable {
    let steps: StepRunner
    let docker: String
    let environment: [String: String]
    var attempts = 4
    var firstBackoff: Duration = .seconds(1)

    static let transientMarkers = [
        "connection refused", "connection reset", "i/o timeout", "502 Bad Gateway", "503 Service Unavailable",
        "500 Internal Server Error", "504 Gateway", "unexpected EOF", "TLS handshake timeout", "received unexpected HTTP status: 5",
    ]

    func push(_ tags: [String]) async throws -> [(String, String)] {
        var digests: [(String, String)] = []
        for tag in tags {
            var backoff = firstBackoff
            for attempt in 1...attempts {
                do {
                    let output = try await steps.run(Command(docker, ["push", tag], environment: environment), step: "push")
                    digests.append((tag, Self.digest(in: output) ?? "unknown"))
                    break
                } catch let failure as StepFailure where failure.status == .failed {
                    guard attempt < attempts, Self.isTransient(failure.output.joined(separator: "\n")) else { throw failure }
                    steps.log.line(
                        "push of \(tag) failed (attempt \(attempt) of \(attempts)); retrying in \(DurationParser.format(backoff))")
                    try await Task.sleep(for: backoff)
                    backoff *= 2
                }
            }
        }
        return digests
    }

    static func isTransient(_ text: String) -> Bool {
        transientMarkers.contains { text.localizedCaseInsensitiveContains($0) }
    }

    /// `latest: digest: sha256:… size: 527` → `sha256:…`
    static func digest(in output: [String]) -> String? {
        for line in output.reversed() {
            guard let range = line.range(of: "digest: sha256:") else { continue }
            let rest = line[line.index(range.lowerBound, offsetBy: 8)...]
            return String(rest.prefix { !$0.isWhitespace })
        }
        return nil
    }
}
