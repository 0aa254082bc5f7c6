import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdBcrypt
import Logging
import Mustache
import NIOCore
import SlipwayCore
import Synchronization

/// The web page (`ui.listen`): tasks, runs with their live log, events with their match trace,
/// engines. Server-rendered HTML; a few lines of script only for the live log (server-sent events).
/// Buttons are HTML forms that POST with a per-login CSRF token; GETs change nothing.
public struct UIController: Sendable {
    let config: ConfigStore
    let log: EventLog
    let runs: RunStore
    let operations: Operations
    /// The engines builds run on (the implicit `local` without `engines:`).
    let engines: EnginePool
    /// `users_file`: user → bcrypt hash; nil = no login (the page then listens on loopback only).
    let users: [String: String]?
    let csrfKey: [UInt8]
    let library: MustacheLibrary
    /// Passwords already checked against their bcrypt hash (by SHA-256): bcrypt is slow on purpose.
    let verified = VerifiedLogins()

    public init(operations: Operations, users: [String: String]?, engines: EnginePool? = nil) {
        let store = operations.config
        self.engines = engines ?? EnginePool(config: { store.current }, defaultHost: ProcessInfo.processInfo.environment["DOCKER_HOST"])
        self.config = operations.config
        self.log = operations.log
        self.runs = operations.runs
        self.operations = operations
        self.users = users
        self.csrfKey = (0..<32).map { _ in UInt8.random(in: 0...255) }
        self.library = UITemplates.library()
    }

    /// Reads an htpasswd file of bcrypt hashes (`htpasswd -B`).
    public static func loadUsers(_ path: String) throws -> [String: String] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var users: [String: String] = [:]
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            guard let colon = trimmed.firstIndex(of: ":") else {
                throw UIError("ui.users_file \(path):\(index + 1): expected user:hash")
            }
            let hash = String(trimmed[trimmed.index(after: colon)...])
            guard ["$2a$", "$2b$", "$2y$"].contains(where: hash.hasPrefix) else {
                throw UIError("ui.users_file \(path):\(index + 1): only bcrypt hashes are accepted (make them with htpasswd -B)")
            }
            // htpasswd writes $2y$, the same algorithm as $2b$ (the name PHP gave its fixed variant).
            users[String(trimmed[..<colon])] = hash.hasPrefix("$2y$") ? "$2b$" + hash.dropFirst(4) : hash
        }
        return users
    }

    struct UIError: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    public func addRoutes(to router: Router<SlipwayRequestContext>) {
        router.get("/") { request, _ in try await page(request) { user in try await tasksPage(user) } }
        router.get("/runs") { request, _ in try await page(request) { user in try await runsPage(request, user) } }
        router.get("/runs/:id") { request, context in
            try await page(request) { user in try await runPage(try context.parameters.require("id"), user) }
        }
        router.get("/runs/:id/log") { request, context in
            try await page(request) { _ in try await fullLog(try context.parameters.require("id")) }
        }
        router.get("/runs/:id/stream") { request, context in
            try await page(request) { _ in try await stream(request, try context.parameters.require("id")) }
        }
        router.get("/events") { request, _ in try await page(request) { user in try await eventsPage(user) } }
        router.get("/events/:seq") { request, context in
            try await page(request) { user in try await eventPage(try context.parameters.require("seq"), user) }
        }
        router.get("/engines") { request, _ in try await page(request) { user in try await enginesPage(user) } }
        router.post("/tasks/:name/run") { request, context in
            try await action(request) { user in
                let id = try await operations.queueManualRun(task: try context.parameters.require("name"), branch: nil, commit: nil, who: user)
                return "/runs/\(id)"
            }
        }
        router.post("/runs/:id/cancel") { request, context in
            try await action(request) { user in
                let id = try context.parameters.require("id")
                _ = try await operations.cancel(id, who: user)
                return "/runs/\(id)"
            }
        }
        router.post("/runs/:id/retry-push") { request, context in
            try await action(request) { user in
                let id = try context.parameters.require("id")
                _ = try await operations.retryPush(id, who: user)
                return "/runs/\(id)"
            }
        }
        router.post("/events/:seq/replay") { request, context in
            try await action(request) { user in
                let seq = try context.parameters.require("seq")
                guard let number = Int64(seq) else { throw Operations.Refusal(status: .notFound, message: "no event with seq '\(seq)'") }
                _ = try await operations.replay(number, who: user)
                return "/events/\(seq)"
            }
        }
    }

    // MARK: authentication and CSRF

    /// The user of a request, or nil when its credentials are missing or wrong.
    func user(_ request: Request) -> String? {
        guard let users else { return "local" }
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("basic "),
            let decoded = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
            let text = String(data: decoded, encoding: .utf8), let colon = text.firstIndex(of: ":")
        else { return nil }
        let name = String(text[..<colon])
        let password = String(text[text.index(after: colon)...])
        guard let hash = users[name] else { return nil }
        let key = SHA256.digest(Array("\(name):\(password):\(hash)".utf8))
        if verified.contains(key) { return name }
        guard Bcrypt.verify(password, hash: hash) else { return nil }
        verified.insert(key)
        return name
    }

    func csrf(_ user: String) -> String {
        HMAC.digest(.sha256, key: csrfKey, message: Array(user.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    static let unauthorized: Response = {
        var response = html(.unauthorized, "<h1>Sign in</h1>")
        response.headers[.wwwAuthenticate] = "Basic realm=\"slipway\""
        return response
    }()

    func page(_ request: Request, _ body: (String) async throws -> Response) async throws -> Response {
        guard let user = user(request) else { return Self.unauthorized }
        do {
            return try await body(user)
        } catch let refusal as Operations.Refusal {
            return render("problem", ["title": refusal.status.reasonPhrase, "message": refusal.message], user: user, status: refusal.status)
        }
    }

    func action(_ request: Request, _ body: (String) async throws -> String) async throws -> Response {
        guard let user = user(request) else { return Self.unauthorized }
        var request = request
        let form = try await request.collectBody(upTo: 16 * 1024)
        let token = FormDecoding.field("csrf", in: Array(form.readableBytesView)).map { String(decoding: $0, as: UTF8.self) }
        guard let token, HMAC.constantTimeEqual(Array(token.utf8), Array(csrf(user).utf8)) else {
            return render("problem", ["title": "Forbidden", "message": "missing or invalid CSRF token: reload the page and try again"], user: user, status: .forbidden)
        }
        do {
            let location = try await body(user)
            return Response(status: .seeOther, headers: [.location: location])
        } catch let refusal as Operations.Refusal {
            return render("problem", ["title": refusal.status.reasonPhrase, "message": refusal.message], user: user, status: refusal.status)
        }
    }

    // MARK: rendering

    static func html(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    func render(_ template: String, _ values: [String: Any], user: String, status: HTTPResponse.Status = .ok) -> Response {
        var values = values
        values["csrf"] = csrf(user)
        let content = library.render(values, withTemplate: template) ?? ""
        let title = values["title"] as? String ?? template.capitalized
        let page = library.render(["title": title, "content": content, "user": users == nil ? "" : user], withTemplate: "layout") ?? content
        return Self.html(status, page)
    }

    static func relative(_ iso: String) -> String { iso.replacingOccurrences(of: "T", with: " ").prefix(19).description + " UTC" }

    // MARK: pages

    func tasksPage(_ user: String) async throws -> Response {
        var rows: [[String: Any]] = []
        for task in config.tasks {
            var row: [String: Any] = ["name": task.name, "context": task.context.description]
            if let last = try await runs.list(task: task.name, top: 1).first {
                row["runId"] = last.runID
                row["status"] = last.status.rawValue
                row["updated"] = Self.relative(last.updatedAt)
            }
            rows.append(row)
        }
        return render("tasks", ["tasks": rows, "title": "Tasks"], user: user)
    }

    func runsPage(_ request: Request, _ user: String) async throws -> Response {
        let task = request.uri.queryParameters["task"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        var status: RunStatus?
        if let s = request.uri.queryParameters["status"].map(String.init), !s.isEmpty {
            guard let parsed = RunStatus.allCases.first(where: { $0.rawValue.lowercased() == s.lowercased() }) else {
                throw Operations.Refusal(
                    status: .badRequest, message: "unknown status '\(s)' (one of \(RunStatus.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            status = parsed
        }
        let before = request.uri.queryParameters["before"].flatMap { Int64($0) }
        let page = 50
        let list = try await runs.list(task: task, status: status, top: page, before: before)
        let rows: [[String: Any]] = list.map {
            [
                "id": $0.runID, "task": $0.task, "status": $0.status.rawValue, "trigger": $0.trigger.rawValue, "short": String($0.commit.prefix(7)),
                "branch": $0.tag.isEmpty ? $0.branch : $0.tag, "created": Self.relative($0.createdAt),
            ]
        }
        var values: [String: Any] = ["runs": rows, "title": "Runs"]
        if let task { values["task"] = task }
        if let status { values["status"] = status.rawValue }
        if list.count == page, let last = list.last {
            var query = ["before=\(last.number)"]
            if let task { query.append("task=\(task.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? task)") }
            if let status { query.append("status=\(status.rawValue)") }
            values["more"] = query.joined(separator: "&")
        }
        return render("runs", values, user: user)
    }

    static let tailLines = 500

    func logPath(_ id: String) -> String { RunExecutor.logPath(dataDirectory: config.current.dataDirectory, runID: id) }

    /// Whole lines of the log from byte `offset` on (at most `limit` bytes), terminal escapes
    /// removed, each with the byte offset just after it (the stream's event id), and where the
    /// next read starts. A line still being written waits for the next read.
    func readLines(_ id: String, from offset: UInt64, limit: Int = 1 << 20, strip: Bool = true) -> (lines: [(text: String, end: UInt64)], next: UInt64) {
        guard let handle = FileHandle(forReadingAtPath: logPath(id)) else { return ([], offset) }
        defer { try? handle.close() }
        try? handle.seek(toOffset: offset)
        let data = (try? handle.read(upToCount: limit)) ?? Data()
        var lines: [(String, UInt64)] = []
        var start = data.startIndex
        var position = offset
        while let newline = data[start...].firstIndex(of: 0x0a) {
            position += UInt64(newline - start + 1)
            let text = String(decoding: data[start..<newline], as: UTF8.self)
            lines.append((strip ? TerminalText.strip(text) : text, position))
            start = newline + 1
        }
        return (lines, position)
    }

    /// The last lines of the log, read from its end only (a 100k-line log is not loaded whole).
    func tail(_ id: String) -> (lines: [String], truncated: Bool, end: UInt64) {
        let path = logPath(id)
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64) ?? 0
        // About 200 bytes a line; a wider window only when the lines are longer than that.
        var window: UInt64 = UInt64(Self.tailLines) * 200
        while true {
            let start = size > window ? size - window : 0
            var (lines, end) = readLines(id, from: start, limit: Int(window), strip: false)
            if start > 0, !lines.isEmpty { lines.removeFirst() }  // probably cut in the middle
            if lines.count >= Self.tailLines || start == 0 || window >= 4 << 20 {
                let truncated = start > 0 || lines.count > Self.tailLines
                // Escape sequences are removed from the shown lines only.
                return (lines.suffix(Self.tailLines).map { TerminalText.strip($0.text) }, truncated, end)
            }
            window *= 4
        }
    }

    func runPage(_ id: String, _ user: String) async throws -> Response {
        guard let run = try await runs.run(id) else { throw Operations.Refusal(status: .notFound, message: "no run with ID '\(id)'") }
        let (shown, truncated, end) = tail(id)
        var values: [String: Any] = [
            "title": "Run \(id)", "id": id, "task": run.task, "status": run.status.rawValue, "trigger": run.trigger.rawValue,
            "commit": run.commit, "branch": run.branch, "tag": run.tag.isEmpty ? "" : "tag \(run.tag)", "engine": run.builtOn,
            "step": run.step.rawValue, "created": Self.relative(run.createdAt),
            "log": shown.joined(separator: "\n"), "offset": end, "shown": shown.count, "truncated": truncated,
            "active": !run.status.isFinal,
            "retryable": run.status.isFinal && run.status != .succeeded && run.step == .push && run.images.contains { $0.digest.isEmpty },
            "durations": ["fetch", "checkout", "build", "push"].compactMap { step in
                run.durations[step].map { ["step": step, "seconds": String(format: "%.1f", $0)] }
            },
            "images": run.images.map { ["tag": $0.tag, "digest": $0.digest] },
        ]
        if !run.requestedBy.isEmpty { values["requestedBy"] = run.requestedBy }
        if !run.reason.isEmpty { values["reason"] = run.reason }
        if let started = run.startedAt { values["started"] = Self.relative(started) }
        if let finished = run.finishedAt { values["finished"] = Self.relative(finished) }
        if let url = Self.commitURL(repo: run.repoURL, commit: run.commit) { values["commitURL"] = url }
        return render("run", values, user: user)
    }

    /// `https://github.com/o/r/commit/SHA` for an http(s) context URL.
    static func commitURL(repo: String, commit: String) -> String? {
        guard repo.hasPrefix("https://") || repo.hasPrefix("http://") else { return nil }
        var base = repo
        if base.hasSuffix(".git") { base = String(base.dropLast(4)) }
        return "\(base)/commit/\(commit)"
    }

    func fullLog(_ id: String) async throws -> Response {
        guard try await runs.run(id) != nil else { throw Operations.Refusal(status: .notFound, message: "no run with ID '\(id)'") }
        let controller = self
        // Streamed a megabyte at a time: the full text of a long log is never held whole.
        let body = ResponseBody { writer in
            var offset: UInt64 = 0
            while true {
                let (lines, next) = controller.readLines(id, from: offset)
                if lines.isEmpty { break }
                try await writer.write(ByteBuffer(string: lines.map(\.text).joined(separator: "\n") + "\n"))
                offset = next
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: body)
    }

    /// Server-sent events: one `data:` per new log line (`id:` = the byte offset after it, so a
    /// browser that reconnects resumes after the last line it got: `Last-Event-ID`), then the final status.
    func stream(_ request: Request, _ id: String) async throws -> Response {
        guard try await runs.run(id) != nil else { throw Operations.Refusal(status: .notFound, message: "no run with ID '\(id)'") }
        let start =
            request.headers[HTTPField.Name("Last-Event-ID")!].flatMap { UInt64($0) } ?? request.uri.queryParameters["from"].flatMap { UInt64($0) } ?? 0
        let runs = self.runs
        let controller = self
        let body = ResponseBody { writer in
            var next = start
            while true {
                let final = try await runs.run(id)?.status
                let (lines, after) = controller.readLines(id, from: next)
                if !lines.isEmpty {
                    var chunk = ""
                    for line in lines { chunk += "id: \(line.end)\ndata: \(line.text)\n\n" }
                    next = after
                    try await writer.write(ByteBuffer(string: chunk))
                    continue
                }
                if let final, final.isFinal {
                    try await writer.write(ByteBuffer(string: "event: status\ndata: \(final.rawValue)\n\n"))
                    break
                }
                // The log file has no change feed: a short sleep between looks.
                try await Task.sleep(for: .milliseconds(250))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"], body: body)
    }

    func eventsPage(_ user: String) async throws -> Response {
        let events = try await log.recent(top: 100).map { AdminAPI.Event($0, trace: nil, payload: false) }
        let rows: [[String: Any]] = events.map {
            [
                "seq": $0.seq, "received": Self.relative($0.receivedAt), "type": $0.type, "repository": $0.repository ?? "", "ref": $0.ref ?? "",
                "delivery": $0.delivery,
            ]
        }
        return render("events", ["events": rows, "title": "Events"], user: user)
    }

    func eventPage(_ seqText: String, _ user: String) async throws -> Response {
        guard let seq = Int64(seqText), let event = try await log.event(seq: seq) else {
            throw Operations.Refusal(status: .notFound, message: "no event with seq '\(seqText)'")
        }
        let summary = AdminAPI.Event(event, trace: nil, payload: false)
        let trace = try await runs.trace(eventSeq: seq)
        var values: [String: Any] = [
            "title": "Event \(seq)", "seq": seq, "type": summary.type, "received": Self.relative(summary.receivedAt), "delivery": summary.delivery,
            "hook": summary.hookId, "signature": summary.signature,
            "trace": trace.map { entry -> [String: Any] in
                var row: [String: Any] = ["task": entry.task, "matched": entry.matched, "reason": entry.reason]
                if let id = entry.runID { row["runId"] = id }
                return row
            },
        ]
        if let repository = summary.repository { values["repository"] = repository }
        if let ref = summary.ref { values["ref"] = ref }
        if let after = summary.after { values["after"] = after }
        if let head = (try? JSONSerialization.jsonObject(with: Data(event.payload)) as? [String: Any])?["head_commit"] as? [String: Any] {
            if let message = head["message"] as? String { values["message"] = message }
            if let author = (head["author"] as? [String: Any])?["name"] as? String { values["author"] = author }
        }
        return render("event", values, user: user)
    }

    func enginesPage(_ user: String) async throws -> Response {
        let list = engines.list()
        let rows: [[String: Any]] = list.map { engine in
            var row: [String: Any] = [
                "name": engine.name, "host": engine.host, "state": engine.state, "up": engine.state == "up", "running": engine.running,
                "max": engine.maxConcurrent, "labels": engine.labels.joined(separator: ", "),
            ]
            if let error = engine.lastError, engine.state != "up" { row["error"] = error }
            if let seen = engine.lastSeen { row["seen"] = seen }
            if let free = engine.diskFreeBytes {
                row["disk"] = SizeParser.format(free)
            } else if let why = engine.diskUnmeasured {
                row["disk"] = "not measured: \(why)"
            }
            return row
        }
        return render("engines", ["engines": rows, "title": "Engines"], user: user)
    }
}

/// Logins whose password was checked against its bcrypt hash (by SHA-256 of user, password, hash).
final class VerifiedLogins: Sendable {
    private let keys = Mutex<Set<[UInt8]>>([])
    func contains(_ key: [UInt8]) -> Bool { keys.withLock { $0.contains(key) } }
    func insert(_ key: [UInt8]) { _ = keys.withLock { $0.insert(key) } }
}
