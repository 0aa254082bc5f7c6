import Foundation
import SlipwayCore
import Testing

/// The real parts `scripts/test-env.sh` starts: dockerd, the registry, the git server.
///
/// Read from the environment (`make test` exports them) or from `.test-env/env`. Outside CI the
/// docker-backed suites are skipped with a message when they are missing; with `CI=true` they run
/// and fail, so a missing part can never pass silently.
enum TestEnvironment {
    static let values: [String: String] = {
        var values = ProcessInfo.processInfo.environment.filter { $0.key.hasPrefix("SLIPWAY_TEST_") }
        if values["SLIPWAY_TEST_DOCKER_HOST"] == nil,
            let text = try? String(contentsOfFile: Fixtures.root + "/.test-env/env", encoding: .utf8)
        {
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
                if parts.count == 2 { values[parts[0]] = parts[1] }
            }
        }
        return values
    }()

    static var isCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }
    static var available: Bool { values["SLIPWAY_TEST_DOCKER_HOST"] != nil }
    static var shouldRun: Bool { available || isCI }
    static let skipMessage: Comment = "needs dockerd, the registry and the git server: run scripts/test-env.sh (make test does)"

    static func require(_ key: String) throws -> String {
        guard let value = values[key] else {
            throw RawHTTPClient.Failure(description: "\(key) is not set: the test environment is missing (scripts/test-env.sh)")
        }
        return value
    }

    static var registry: String { values["SLIPWAY_TEST_REGISTRY"] ?? "missing" }
    static var registryPort: Int { Int(registry.split(separator: ":").last ?? "") ?? 0 }
    static var gitURL: String { values["SLIPWAY_TEST_GIT_URL"] ?? "missing" }
    static var baseImage: String { values["SLIPWAY_TEST_BASE_IMAGE"] ?? "missing" }
    static var tokenFile: String { values["SLIPWAY_TEST_GIT_TOKEN_FILE"] ?? "missing" }
    static var token: String {
        (try? String(contentsOfFile: tokenFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "missing"
    }
    static var registryPassword: String {
        (try? String(contentsOfFile: values["SLIPWAY_TEST_REGISTRY_PASSWORD_FILE"] ?? "", encoding: .utf8))?.trimmingCharacters(
            in: .whitespacesAndNewlines) ?? ""
    }

    /// The `builds:` and `registries:` config for a daemon that uses these parts.
    static func buildConfig(maxConcurrent: Int = 2, extraRegistry: String? = nil) throws -> String {
        let docker = try require("SLIPWAY_TEST_DOCKER")
        let user = try require("SLIPWAY_TEST_REGISTRY_USER")
        let passwordFile = try require("SLIPWAY_TEST_REGISTRY_PASSWORD_FILE")
        var text = """
            builds: { docker: "\(docker)", network: "none", buildkit: true, max_concurrent: \(maxConcurrent), default_timeout: "5m" }
            registries:
              - { server: "\(registry)", username: "\(user)", password_file: "\(passwordFile)" }
            """
        if let extraRegistry {
            text += "\n  - { server: \"\(extraRegistry)\", username: \"\(user)\", password_file: \"\(passwordFile)\" }"
        }
        return text
    }
}

/// A repository on the test git server, with a local clone to commit from.
final class GitRepo {
    let name: String
    let bare: String
    let work: String
    let isPrivate: Bool

    init(name: String, isPrivate: Bool = true) throws {
        self.name = name
        self.isPrivate = isPrivate
        bare = try TestEnvironment.require("SLIPWAY_TEST_GIT_ROOT") + "/\(isPrivate ? "private" : "public")/\(name).git"
        work = "/tmp/slipway-repo-\(name)"
        try? FileManager.default.removeItem(atPath: work)
        try? FileManager.default.removeItem(atPath: bare)
        try git(["init", "--quiet", "--bare", bare])
        try git(["init", "--quiet", "-b", "main", work])
    }

    deinit {
        try? FileManager.default.removeItem(atPath: work)
        try? FileManager.default.removeItem(atPath: bare)
    }

    /// The URL the daemon clones (HTTP, basic auth under /private/).
    var url: String { "\(TestEnvironment.gitURL)/\(isPrivate ? "private" : "public")/\(name).git" }

    @discardableResult
    func git(_ args: [String], in dir: String? = nil) throws -> String {
        var env = ProcessInfo.processInfo.environment
        env["GIT_AUTHOR_NAME"] = "Test"; env["GIT_AUTHOR_EMAIL"] = "t@example.com"
        env["GIT_COMMITTER_NAME"] = "Test"; env["GIT_COMMITTER_EMAIL"] = "t@example.com"
        let result = try run("/usr/bin/git", (dir.map { ["-C", $0] } ?? []) + args, environment: env)
        guard result.status == 0 else { throw RawHTTPClient.Failure(description: "git \(args.joined(separator: " ")): \(result.err)") }
        return result.out.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Writes `files`, commits, pushes `branch` to the server (by path: no credentials in any argv); returns the sha.
    func commit(_ files: [String: String], message: String = "change", branch: String = "main") throws -> String {
        for (path, text) in files {
            let full = "\(work)/\(path)"
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: full, atomically: true, encoding: .utf8)
        }
        try git(["add", "-A"], in: work)
        try git(["commit", "--quiet", "--allow-empty", "-m", message], in: work)
        try git(["push", "--quiet", "--force", bare, "HEAD:refs/heads/\(branch)"], in: work)
        return try git(["rev-parse", "HEAD"], in: work)
    }

    /// A GitHub-shaped push payload for `after` on `branch`. Each call's bytes are distinct (as
    /// GitHub's are: timestamps, ids): a body already in the log is a duplicate whatever its ids.
    func pushPayload(after: String, branch: String = "main", files: [String], message: String = "change", deleted: Bool = false) -> Data {
        let payload: [String: Any] = [
            "test_nonce": UUID().uuidString,
            "ref": "refs/heads/\(branch)", "before": String(repeating: "0", count: 40), "after": after, "deleted": deleted,
            "head_commit": ["id": after, "message": message],
            "commits": [["id": after, "message": message, "added": files, "modified": [String](), "removed": [String]()]],
            "repository": ["full_name": "test/\(name)", "clone_url": url, "html_url": url.replacingOccurrences(of: ".git", with: "")],
        ]
        return try! JSONSerialization.data(withJSONObject: payload)
    }
}

extension DaemonProcess {
    /// Sends a signed push and returns the event seq.
    @discardableResult
    func push(_ body: Data, delivery: String = UUID().uuidString, event: String = "push") throws -> Int {
        let r = try RawHTTPClient(port: port).request(
            "POST", "/webhooks/github", headers: DaemonProcess.headers(for: body, event: event, delivery: delivery), body: body)
        guard r.status == 202, let seq = r.json["event"] as? Int else {
            throw RawHTTPClient.Failure(description: "push answered \(r.status)")
        }
        return seq
    }

    struct RunRow {
        var runID: String
        var status: String
        var reason: String
        var step: String
        var attempt: Int
        var commit: String
        var digests: String
    }

    func runs() throws -> [RunRow] {
        // The test's own read-only observer once hit a transient SQLITE_IOERR while every suite
        // started at once on a loaded machine; one retry keeps the observer from failing a test
        // whose daemon is fine (the daemon's own reads and writes are checked by the assertions).
        // SQLITE_IOERR and its extended codes (266 = IOERR_READ): retried a few times.
        for _ in 0..<5 {
            do { return try readRuns() } catch let error as SQLiteError where error.code & 0xff == 10 { usleep(200_000) }
        }
        return try readRuns()
    }

    private func readRuns() throws -> [RunRow] {
        guard FileManager.default.fileExists(atPath: databasePath) else { return [] }
        let db = try SQLiteConnection(path: databasePath, readOnly: true)
        return try db.prepare(
            """
            SELECT r.run_id, s.status, s.reason, s.step, r.attempt, r.commit_sha, s.digests FROM runs r
            JOIN run_states s ON s.seq = (SELECT MAX(seq) FROM run_states WHERE run = r.id) ORDER BY r.id
            """
        ).rows {
            RunRow(
                runID: $0.text(0), status: $0.text(1), reason: $0.text(2), step: $0.text(3), attempt: Int($0.int(4)), commit: $0.text(5),
                digests: $0.text(6))
        }
    }

    /// Polls until `runID` reaches a final status; returns it.
    func waitForRun(_ runID: String, timeout: TimeInterval = 120) throws -> RunRow {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let row = try runs().first(where: { $0.runID == runID }), !["Queued", "Running"].contains(row.status) { return row }
            usleep(100_000)
        }
        throw RawHTTPClient.Failure(
            description:
                "run \(runID) did not finish in \(Int(timeout)) s; runs: \(try runs().map { "\($0.runID)=\($0.status)" })\n\(log.suffix(3000))"
        )
    }

    /// Polls until `condition` holds.
    func waitUntil(_ what: String, timeout: TimeInterval = 60, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return }
            usleep(50_000)
        }
        throw RawHTTPClient.Failure(description: "timed out waiting for \(what)\n\(log.suffix(3000))")
    }

    func traces(event: Int) throws -> [String: String] {
        let db = try SQLiteConnection(path: databasePath, readOnly: true)
        let rows = try db.prepare("SELECT task, reason FROM match_traces WHERE event_seq = ?").bind([.integer(Int64(event))]).rows {
            ($0.text(0), $0.text(1))
        }
        return Dictionary(uniqueKeysWithValues: rows)
    }

    func runLog(_ runID: String) -> String {
        (try? String(contentsOfFile: dir + "/data/runs/\(runID).log", encoding: .utf8)) ?? ""
    }
}

/// The test registry over HTTP with basic auth.
enum Registry {
    static func get(_ path: String, port: Int = TestEnvironment.registryPort, accept: String? = nil) throws -> RawHTTPClient.Response {
        let auth = Data("\(TestEnvironment.values["SLIPWAY_TEST_REGISTRY_USER"] ?? ""):\(TestEnvironment.registryPassword)".utf8)
            .base64EncodedString()
        var headers = [("Authorization", "Basic \(auth)")]
        if let accept { headers.append(("Accept", accept)) }
        return try RawHTTPClient(port: port).request("GET", path, headers: headers)
    }

    static func tags(_ repository: String, port: Int = TestEnvironment.registryPort) throws -> [String] {
        (try get("/v2/\(repository)/tags/list", port: port).json["tags"] as? [String] ?? []).sorted()
    }

    /// The image config's labels for `repository:tag`.
    static func labels(_ repository: String, tag: String) throws -> [String: String] {
        let manifest = try get("/v2/\(repository)/manifests/\(tag)", accept: "application/vnd.docker.distribution.manifest.v2+json").json
        guard let config = (manifest["config"] as? [String: Any])?["digest"] as? String else { return [:] }
        let blob = try get("/v2/\(repository)/blobs/\(config)").json
        return (blob["config"] as? [String: Any])?["Labels"] as? [String: String] ?? [:]
    }
}

/// Processes whose command line (arguments joined by spaces) — or, with `environment`, whose
/// environment — contains `needle`, from /proc.
func processesHolding(_ needle: String, environment: Bool, includeControls: Bool = false) -> [(pid: String, cmdline: String, inArgs: Bool)] {
    let bytes = Data(needle.utf8)
    let marker = Data(procScanControlMarker.utf8)
    let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc").filter { $0.allSatisfy(\.isNumber) }) ?? []
    return pids.compactMap { pid in
        let raw = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data()
        let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ")
        // Another test's positive control (planted on purpose) is not a leak.
        if !includeControls && (raw.range(of: marker) != nil || environ?.range(of: marker) != nil) { return nil }
        let cmdline = String(decoding: raw.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
        let inArgs = cmdline.contains(needle)
        let inEnviron = environment && environ?.range(of: bytes) != nil
        return inArgs || inEnviron ? (pid, cmdline, inArgs) : nil
    }
}

/// Marks the planted processes of `expectProcScanFinds` (in argv and in the environment).
let procScanControlMarker = "slipway-proc-scan-control"

/// The positive control of the /proc scans: a process holding `needle` in its argv and its
/// environment is found by both, so an empty scan result means "not there", not "not looked".
func expectProcScanFinds(_ needle: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let control = Process()
    control.executableURL = URL(fileURLWithPath: "/bin/sh")
    // The shell's builtin `read` waits on a pipe nobody writes: no child inherits the value.
    control.arguments = ["-c", "read line", procScanControlMarker, needle]
    control.environment = ["PATH": "/usr/bin:/bin", "MARKER": procScanControlMarker]
    let stdin = Pipe()
    control.standardInput = stdin
    try control.run()
    defer {
        kill(control.processIdentifier, SIGKILL)  // SIGTERM may be ignored, inherited from the test process
        control.waitUntilExit()
    }
    var found: [(pid: String, cmdline: String, inArgs: Bool)] = []
    for _ in 0..<100 {
        found = processesHolding(needle, environment: true, includeControls: true).filter { $0.pid == "\(control.processIdentifier)" }
        if !found.isEmpty { break }
        usleep(10_000)
    }
    #expect(found.first?.inArgs == true, "the argv scan sees a planted value", sourceLocation: sourceLocation)
    _ = stdin
    #expect(
        processesHolding(needle, environment: false, includeControls: true).contains { $0.pid == "\(control.processIdentifier)" },
        sourceLocation: sourceLocation)
    let environOnly = Process()
    environOnly.executableURL = URL(fileURLWithPath: "/bin/sleep")
    environOnly.arguments = ["30"]
    environOnly.environment = ["SLIPWAY_CONTROL": needle, "MARKER": procScanControlMarker]
    try environOnly.run()
    defer {
        kill(environOnly.processIdentifier, SIGKILL)
        environOnly.waitUntilExit()
    }
    var inEnviron = false
    for _ in 0..<100 where !inEnviron {
        inEnviron = processesHolding(needle, environment: true, includeControls: true).contains {
            $0.pid == "\(environOnly.processIdentifier)" && !$0.inArgs
        }
        if !inEnviron { usleep(10_000) }
    }
    #expect(inEnviron, "the environ scan sees a planted value", sourceLocation: sourceLocation)
}

/// Processes whose command line contains `needle`, as `pid: cmdline`.
func processesMentioning(_ needle: String) -> [String] {
    processesHolding(needle, environment: false).map { "\($0.pid): \($0.cmdline)" }
}

/// Runs the `slipway` CLI against `daemon` (through its config, so its admin socket).
func cli(_ daemon: DaemonProcess, _ args: [String]) throws -> (status: Int32, out: String, err: String) {
    try run(DaemonProcess.binary, args + ["--config", daemon.configPath])
}
