import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import SlipwayCore

/// The admin API (`/v1/...`), served only on the admin unix socket.
public struct AdminController: Sendable {
    let config: ConfigStore
    let log: EventLog
    let runs: RunStore
    /// Manual runs, cancel, retry-push, replay: shared with the web page.
    let operations: Operations
    /// The daemon's one reload (the same as SIGHUP): validate, swap, re-read the webhook secrets, log.
    let reload: @Sendable () -> Result<SlipwayConfig, ConfigErrors>
    let logger: Logger
    let baseImages: BaseImageStore?
    let github: GitHubClients?
    let outbox: StatusOutbox?
    let engines: EnginePool?

    public init(
        operations: Operations, reload: @escaping @Sendable () -> Result<SlipwayConfig, ConfigErrors>, logger: Logger,
        baseImages: BaseImageStore? = nil, github: GitHubClients? = nil, outbox: StatusOutbox? = nil, engines: EnginePool? = nil
    ) {
        self.engines = engines
        self.baseImages = baseImages
        self.github = github
        self.outbox = outbox
        self.operations = operations
        self.config = operations.config
        self.reload = reload
        self.log = operations.log
        self.runs = operations.runs
        self.logger = logger
    }

    public func addRoutes(to router: Router<SlipwayRequestContext>) {
        let v1 = router.group("v1")
        v1.get("tasks") { _, _ in try await json(taskDocuments()) }
        v1.get("tasks/:name") { _, context in
            let name = try context.parameters.require("name")
            guard let doc = try await taskDocuments().first(where: { $0.name == name }) else {
                return problem(.notFound, "no task named '\(name)'")
            }
            return try json(doc)
        }
        v1.post("tasks/:name/runs") { request, context in try await manualRun(request, context) }
        v1.get("runs") { request, _ in
            let task = request.uri.queryParameters["task"].map(String.init)
            var status: RunStatus?
            if let s = request.uri.queryParameters["status"] {
                guard let parsed = RunStatus.allCases.first(where: { $0.rawValue.lowercased() == s.lowercased() }) else {
                    return problem(
                        .badRequest, "unknown status '\(s)' (one of \(RunStatus.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                status = parsed
            }
            let top = request.uri.queryParameters["top"].flatMap { Int($0) } ?? 15
            return try json(try await runs.list(task: task, status: status, top: max(1, min(top, 1000))).map(AdminAPI.Run.init))
        }
        v1.get("runs/latest") { request, _ in
            let task = request.uri.queryParameters["task"].map(String.init)
            guard let run = try await runs.latestUpdated(task: task) else {
                return problem(.notFound, task.map { "task '\($0)' has no runs yet" } ?? "there are no runs yet")
            }
            return try json(AdminAPI.Run(run))
        }
        v1.get("runs/:id") { _, context in
            let id = try context.parameters.require("id")
            guard let run = try await runs.run(id) else { return problem(.notFound, "no run with ID '\(id)'") }
            var doc = AdminAPI.Run(run)
            if let outbox { doc.statuses = try await outbox.statuses(runID: id) }
            return try json(doc)
        }
        v1.post("runs/:id/cancel") { request, context in try await cancel(request, context) }
        v1.post("runs/:id/retry-push") { request, context in try await retryPush(request, context) }
        v1.get("runs/:id/log") { request, context in try await runLog(request, context) }
        v1.get("events") { request, _ in
            let top = request.uri.queryParameters["top"].flatMap { Int($0) } ?? 15
            return try json(try await log.recent(top: max(1, min(top, 1000))).map { AdminAPI.Event($0, trace: nil, payload: false) })
        }
        v1.get("events/:seq") { request, context in
            guard let seq = Int64(try context.parameters.require("seq")), let event = try await log.event(seq: seq) else {
                return problem(.notFound, "no event with seq '\(context.parameters.get("seq") ?? "")'")
            }
            let trace = try await runs.trace(eventSeq: seq).map {
                AdminAPI.TraceEntry(task: $0.task, matched: $0.matched, reason: $0.reason, runId: $0.runID)
            }
            let payload = request.uri.queryParameters["payload"].map { $0 == "1" || $0 == "true" } ?? false
            return try json(AdminAPI.Event(event, trace: trace, payload: payload))
        }
        v1.post("events/:seq/replay") { _, context in try await replay(context) }
        v1.get("backup") { _, context in try await backup(context) }
        v1.get("engines") { _, _ in try json(engines?.list() ?? []) }
        v1.get("github/hooks") { request, _ in try await hooks(request, action: "list") }
        v1.post("github/hooks") { request, _ in try await hooks(request, action: "create") }
        v1.delete("github/hooks") { request, _ in try await hooks(request, action: "delete") }
        v1.post("reload") { _, _ in
            switch reload() {
            case .success(let fresh): return try json(AdminAPI.Reloaded(tasks: fresh.tasks.count))
            case .failure(let errors): return problem(.unprocessableContent, errors.description)
            }
        }
    }

    func taskDocuments() async throws -> [AdminAPI.Task] {
        let tasksDirectory = FileText.directory(of: config.path) + "/tasks.d/"
        var docs: [AdminAPI.Task] = []
        for task in config.tasks {
            let last = try await runs.list(task: task.name, top: 1).first
            var doc = AdminAPI.Task(task, defaultTimeout: config.current.builds.defaultTimeout, tasksDirectory: tasksDirectory, lastRun: last)
            doc.baseImages = try await baseImages?.watched(task: task.name).map {
                AdminAPI.BaseImage(image: $0.image, digest: $0.digest, runId: $0.runId, checkedAt: $0.checkedAt)
            }
            docs.append(doc)
        }
        return docs
    }

    /// Runs an operation, answering its refusal as a problem document.
    func answer(_ body: () async throws -> Response) async throws -> Response {
        do {
            return try await body()
        } catch let refusal as Operations.Refusal {
            return problem(refusal.status, refusal.message)
        }
    }

    func manualRun(_ request: Request, _ context: SlipwayRequestContext) async throws -> Response {
        let name = try context.parameters.require("name")
        var request = request
        let body = try await request.collectBody(upTo: 64 * 1024)
        let ask =
            (try? AdminAPI.decoder.decode(AdminAPI.RunRequest.self, from: Data(body.readableBytesView)))
            ?? AdminAPI.RunRequest(branch: nil, commit: nil)
        let who = await Self.operatorName(context)
        return try await answer {
            let runID = try await operations.queueManualRun(task: name, branch: ask.branch, commit: ask.commit, who: who)
            return try json(AdminAPI.Queued(runId: runID), status: .accepted)
        }
    }

    func cancel(_ request: Request, _ context: SlipwayRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        let who = await Self.operatorName(context)
        return try await answer {
            guard let run = try await operations.cancel(id, who: who) else {
                return problem(.accepted, "cancel of \(id) requested; it has not stopped yet")
            }
            return try json(AdminAPI.Run(run))
        }
    }

    /// Queues the push of a run's kept images again, after the registry was down.
    func retryPush(_ request: Request, _ context: SlipwayRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        let who = await Self.operatorName(context)
        return try await answer {
            _ = try await operations.retryPush(id, who: who)
            return try json(AdminAPI.Queued(runId: id), status: .accepted)
        }
    }

    /// The run's log; with `follow`, streamed as it is written until the run ends. Always ends with a summary line.
    func runLog(_ request: Request, _ context: SlipwayRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        guard try await runs.run(id) != nil else { return problem(.notFound, "no run with ID '\(id)'") }
        let follow = request.uri.queryParameters["follow"].map { $0 == "1" || $0 == "true" } ?? false
        let path = RunExecutor.logPath(dataDirectory: config.current.dataDirectory, runID: id)
        let tombstone = Retention.tombstone(folder: config.current.dataDirectory + "/runs", runID: id)
        if !FileManager.default.fileExists(atPath: path), let note = try? String(contentsOfFile: tombstone, encoding: .utf8) {
            let text = "The log of \(id) was removed by retention: \(note.trimmingCharacters(in: .whitespacesAndNewlines))\n"
            return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        let runs = self.runs
        let body = ResponseBody { writer in
            var offset: UInt64 = 0
            var lastLine = ""
            while true {
                let final = try await runs.run(id)?.status.isFinal ?? true
                let chunk = Self.read(path, from: &offset)
                if !chunk.isEmpty {
                    if let text = String(data: chunk, encoding: .utf8), let last = text.split(separator: "\n").last {
                        lastLine = String(last)
                    }
                    try await writer.write(ByteBuffer(bytes: chunk))
                    continue
                }
                if final || !follow { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            if let run = try await runs.run(id), run.status.isFinal, !lastLine.contains("Run \(id) ") {
                let why = run.reason.isEmpty ? "" : ": \(run.reason)"
                try await writer.write(ByteBuffer(string: "Run \(id) \(run.status.rawValue.lowercased())\(why)\n"))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: body)
    }

    static func read(_ path: String, from offset: inout UInt64) -> Data {
        guard let handle = FileHandle(forReadingAtPath: path) else { return Data() }
        defer { try? handle.close() }
        try? handle.seek(toOffset: offset)
        let data = (try? handle.read(upToCount: 1 << 20)) ?? Data()
        // Only whole lines: a line still being written is sent on the next read.
        guard let lastNewline = data.lastIndex(of: 0x0a) else { return Data() }
        let whole = data[data.startIndex...lastNewline]
        offset += UInt64(whole.count)
        return Data(whole)
    }

    func replay(_ context: SlipwayRequestContext) async throws -> Response {
        guard let seq = Int64(try context.parameters.require("seq")) else {
            return problem(.notFound, "no event with seq '\(context.parameters.get("seq") ?? "")'")
        }
        let who = await Self.operatorName(context)
        return try await answer {
            let (event, trace) = try await operations.replay(seq, who: who)
            return try json(AdminAPI.Event(event, trace: trace, payload: false), status: .accepted)
        }
    }

    /// `slipway github hook create|list|delete --repo OWNER/NAME`: the daemon holds the token.
    func hooks(_ request: Request, action: String) async throws -> Response {
        guard let repo = request.uri.queryParameters["repo"].map(String.init), repo.split(separator: "/").count == 2 else {
            return problem(.badRequest, "give --repo OWNER/NAME")
        }
        guard config.current.github != nil else { return problem(.conflict, "github: is not configured (github.token_file or github.app)") }
        guard let manager = github?.hooks else {
            return problem(.conflict, "public_url is not set: the hook's URL is <public_url>/webhooks/github")
        }
        do {
            switch action {
            case "create":
                let (hook, created) = try await manager.createOrUpdate(repo: repo)
                logger.notice(created ? "github webhook created" : "github webhook updated", metadata: ["repo": "\(repo)", "hook": "\(hook.id)"])
                return try json(AdminAPI.GitHubHook(hook, repo: repo, created: created), status: created ? .created : .ok)
            case "delete":
                guard let hook = try await manager.delete(repo: repo) else {
                    return problem(.notFound, "\(repo) has no webhook with the URL \(manager.url)")
                }
                logger.notice("github webhook deleted", metadata: ["repo": "\(repo)", "hook": "\(hook.id)"])
                return try json(AdminAPI.GitHubHook(hook, repo: repo, created: false))
            default:
                let hook = try await manager.find(repo: repo)
                return try json(hook.map { [AdminAPI.GitHubHook($0, repo: repo, created: false)] } ?? [])
            }
        } catch let failure as HookManager.Failure {
            return problem(.badGateway, failure.description)
        } catch let failure as GitHubClient.Failure {
            return problem(.badGateway, failure.description)
        }
    }

    /// A consistent copy of the whole database, streamed: the daemon makes it (it can read the
    /// database; the CLI user may not) and the CLI writes it where the operator asked.
    func backup(_ context: SlipwayRequestContext) async throws -> Response {
        let dataDirectory = config.current.dataDirectory
        let file = "\(dataDirectory)/tmp/backup-\(UInt64.random(in: 0...UInt64.max)).sqlite"
        try FileText.makeDirectories(dataDirectory + "/tmp", mode: 0o700)
        do {
            try await Backup.snapshot(of: log.database.path, to: file)
        } catch {
            try? FileManager.default.removeItem(atPath: file)
            return problem(.internalServerError, "\(error)")
        }
        let who = await Self.operatorName(context)
        let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
        logger.notice("backup taken", metadata: ["bytes": "\(size)", "requested_by": "\(who)"])
        let body = ResponseBody { writer in
            defer { try? FileManager.default.removeItem(atPath: file) }
            guard let handle = FileHandle(forReadingAtPath: file) else { throw AdminAPI.Problem("backup file vanished") }
            defer { try? handle.close() }
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
                try await writer.write(ByteBuffer(bytes: chunk))
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok, headers: [.contentType: "application/vnd.sqlite3", .contentLength: "\(size)"], body: body)
    }

    /// Who is asking: the account of the process at the other end of the admin socket, from the
    /// kernel (`SO_PEERCRED`); a header the client sets is never trusted for this.
    static func operatorName(_ context: SlipwayRequestContext) async -> String {
        await context.peerUser() ?? "an operator"
    }

    func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        var data = try AdminAPI.encoder.encode(value)
        data.append(0x0a)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    func problem(_ status: HTTPResponse.Status, _ message: String) -> Response {
        let data = (try? AdminAPI.encoder.encode(AdminAPI.Problem(message))) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
