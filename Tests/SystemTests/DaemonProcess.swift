import Foundation
import SlipwayCore

#if canImport(Glibc)
    import Glibc
#endif

/// The real `slipway` binary, run as a child process on a temporary data dir and a free port.
final class DaemonProcess {
    static let secret = "system-test-secret"

    let dir: String
    let port: Int
    var process: Process?
    /// Fixtures (repositories) that must live as long as the daemon uses them.
    var keepAlive: [AnyObject] = []
    /// Variables set for the daemon on top of the test's own (e.g. another DOCKER_HOST).
    var environment: [String: String] = [:]
    var logPath: String { dir + "/daemon.log" }
    var configPath: String { dir + "/slipway.yaml" }
    var databasePath: String { dir + "/data/slipway.sqlite" }

    /// The binary under test: `$SLIPWAY_BIN`, else the package's debug build.
    static var binary: String {
        if let bin = ProcessInfo.processInfo.environment["SLIPWAY_BIN"] { return bin }
        let file = #filePath
        return String(file[..<file.range(of: "/Tests/")!.lowerBound]) + "/.build/debug/slipway"
    }

    /// `webhookConfig`: more lines under `webhook:` (e.g. `read_timeout: "2s"`).
    init(extraConfig: String = "", webhookConfig: [String] = []) throws {
        dir = "/tmp/slipway-sys-\(UUID().uuidString.prefix(8))"
        port = try Self.freePort()
        try FileManager.default.createDirectory(atPath: dir + "/secrets", withIntermediateDirectories: true)
        FileManager.default.createFile(
            atPath: dir + "/secrets/webhook", contents: Data((Self.secret + "\n").utf8), attributes: [.posixPermissions: 0o600])
        let config = """
            listen: "127.0.0.1:\(port)"
            data_dir: "data"
            admin_socket: "slipway.sock"
            webhook:
              secret_files: ["secrets/webhook"]
              max_body_bytes: 1048576
            \(webhookConfig.map { "  " + $0 + "\n" }.joined())\(extraConfig)
            """
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    deinit {
        if let process, process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Adds lines at the end of the config file.
    func appendConfig(_ text: String) throws {
        let current = try String(contentsOfFile: configPath, encoding: .utf8)
        try (current + "\n" + text).write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// Replaces text in the config file.
    func rewriteConfig(_ old: String, _ new: String) throws {
        let current = try String(contentsOfFile: configPath, encoding: .utf8)
        try current.replacingOccurrences(of: old, with: new).write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// Starts the daemon and waits until `/healthz` answers 200 (over plain HTTP; a TLS
    /// listener's test waits itself).
    func start(waitForHealth: Bool = true) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            throw RawHTTPClient.Failure(
                description: "no slipway binary at \(Self.binary): run `swift build` (make test does) or set SLIPWAY_BIN")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binary)
        p.arguments = ["serve", "--config", configPath]
        var env = ProcessInfo.processInfo.environment
        if let dockerHost = TestEnvironment.values["SLIPWAY_TEST_DOCKER_HOST"] { env["DOCKER_HOST"] = dockerHost }
        env.merge(environment) { _, mine in mine }
        p.environment = env
        if !FileManager.default.fileExists(atPath: logPath) { FileManager.default.createFile(atPath: logPath, contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        p.standardError = log
        p.standardOutput = log
        try p.run()
        process = p
        guard waitForHealth else { return }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if !p.isRunning { throw RawHTTPClient.Failure(description: "daemon exited with \(p.terminationStatus):\n\(self.log)") }
            if let r = try? RawHTTPClient(port: port, timeoutSeconds: 2).request("GET", "/healthz"), r.status == 200 { return }
            usleep(50_000)
        }
        throw RawHTTPClient.Failure(description: "daemon did not become healthy in 30 s:\n\(self.log)")
    }

    func signal(_ sig: Int32) {
        if let process { kill(process.processIdentifier, sig) }
    }

    /// Waits for the process to exit and returns its status.
    @discardableResult
    func waitForExit(timeout: TimeInterval = 30) -> Int32? {
        guard let process else { return nil }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        return process.isRunning ? nil : process.terminationStatus
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Signed headers for `body`.
    /// `body` made distinct for `delivery` (a JSON object gets a `test_delivery` field first), so
    /// deliveries that differ only in their ids are not duplicates of each other: a body already in
    /// the log is a duplicate whatever its ids. The same delivery id gives the same bytes.
    static func distinct(_ body: Data, _ delivery: String) -> Data {
        guard body.first == UInt8(ascii: "{") else { return body }
        return Data("{\"test_delivery\":\"\(delivery)\",".utf8) + body.dropFirst()
    }

    static func headers(for body: Data, event: String = "push", delivery: String, hook: String = "77") -> [(String, String)] {
        let sig = HMAC.digest(.sha256, key: Array(secret.utf8), message: Array(body)).hexString
        return [
            ("Content-Type", "application/json"), ("X-GitHub-Event", event), ("X-GitHub-Delivery", delivery),
            ("X-GitHub-Hook-ID", hook), ("X-Hub-Signature-256", "sha256=\(sig)"),
        ]
    }

    /// Puts `data_dir` on a tmpfs of `size` (mount's syntax: `4m`, `3g`) before `start()`; returns
    /// its path. Pair with `defer { daemon.unmountData() }`.
    func mountDataOnTmpfs(size: String) throws -> String {
        let data = dir + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let mounted = try run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", data])
        guard mounted.status == 0 else { throw RawHTTPClient.Failure(description: "mount tmpfs on \(data): \(mounted.err)") }
        return data
    }

    func unmountData() { _ = try? run("/bin/umount", ["-l", dir + "/data"]) }

    /// `slipway engine list --output json`, decoded.
    func engines() throws -> [AdminAPI.Engine] {
        try AdminAPI.decoder.decode([AdminAPI.Engine].self, from: Data(try cli(self, ["engine", "list", "--output", "json"]).out.utf8))
    }

    /// Delivery ids and their seqs as stored, read straight from SQLite.
    func storedDeliveries() throws -> [(id: String, seq: Int64)] {
        let db = try SQLiteConnection(path: databasePath, readOnly: true)
        return try db.prepare("SELECT delivery_id, seq FROM events ORDER BY seq").rows { ($0.text(0), $0.int(1)) }
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

/// Runs `body(i)` on `count` plain threads and waits for all of them.
func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for i in 0..<count {
        group.enter()
        let thread = Thread {
            body(i)
            group.leave()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
    group.wait()
}

/// Runs a command with an argument array; returns exit status, stdout and stderr.
func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws -> (
    status: Int32, out: String, err: String
) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let environment { p.environment = environment }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}
