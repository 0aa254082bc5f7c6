import Foundation
import SlipwayCore
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The webhook listener of the real `slipway serve` process, over real TCP.
@Suite(.serialized) struct ReceiverSystemTests {
    static let push = Data(#"{"ref":"refs/heads/main","after":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"}"#.utf8)

    @Test func everyRowOfTheHTTPTable() throws {
        let daemon = try DaemonProcess()
        try daemon.start()
        let client = try RawHTTPClient(port: daemon.port)

        let created = try client.request(
            "POST", "/webhooks/github", headers: DaemonProcess.headers(for: DaemonProcess.distinct(Self.push, "row-1"), delivery: "row-1"), body: DaemonProcess.distinct(Self.push, "row-1"))
        #expect(created.status == 202)
        #expect(created.json["event"] as? Int == 1)
        #expect(created.json["delivery"] as? String == "row-1")

        let again = try client.request(
            "POST", "/webhooks/github", headers: DaemonProcess.headers(for: DaemonProcess.distinct(Self.push, "row-1"), delivery: "row-1"), body: DaemonProcess.distinct(Self.push, "row-1"))
        #expect(again.status == 200)
        #expect(again.json["duplicate"] as? Bool == true)
        #expect(again.json["event"] as? Int == 1)

        let ping = Data(#"{"zen":"Design for failure.","hook_id":77}"#.utf8)
        let pong = try client.request(
            "POST", "/webhooks/github", headers: DaemonProcess.headers(for: ping, event: "ping", delivery: "row-ping"), body: ping)
        #expect(pong.status == 200)
        #expect(pong.json["zen"] as? String == "Design for failure.")

        var forged = DaemonProcess.headers(for: Self.push, delivery: "row-forged")
        forged[forged.count - 1].1 = "sha256=" + String(repeating: "ab", count: 32)
        #expect(try client.request("POST", "/webhooks/github", headers: forged, body: Self.push).status == 401)
        let unsigned = Array(DaemonProcess.headers(for: Self.push, delivery: "row-unsigned").dropLast())
        #expect(try client.request("POST", "/webhooks/github", headers: unsigned, body: Self.push).status == 401)

        var text = DaemonProcess.headers(for: Self.push, delivery: "row-text")
        text[0].1 = "text/plain"
        #expect(try client.request("POST", "/webhooks/github", headers: text, body: Self.push).status == 415)

        let noEvent = DaemonProcess.headers(for: Self.push, delivery: "row-noevent").filter { $0.0 != "X-GitHub-Event" }
        let r400 = try client.request("POST", "/webhooks/github", headers: noEvent, body: Self.push)
        #expect(r400.status == 400)
        #expect(r400.json["error"] as? String == "missing X-GitHub-Event header")
        let broken = Data("{\"ref\":".utf8)
        #expect(
            try client.request(
                "POST", "/webhooks/github", headers: DaemonProcess.headers(for: broken, delivery: "row-broken"), body: broken
            ).status == 400)

        let star = Data("{}".utf8)
        #expect(
            try client.request(
                "POST", "/webhooks/github", headers: DaemonProcess.headers(for: star, event: "star", delivery: "row-star"), body: star
            ).status == 202)

        let health = try client.request("GET", "/healthz")
        #expect(health.status == 200)
        #expect(health.json["status"] as? String == "ok")

        // Metrics count what happened, by event and answer.
        let metrics = String(decoding: try client.request("GET", "/metrics").body, as: UTF8.self)
        #expect(metrics.contains("slipway_webhook_deliveries_total{event=\"push\",status=\"202\"} 1"), "\(metrics)")
        #expect(metrics.contains("slipway_webhook_deliveries_total{event=\"push\",status=\"200\"} 1"), "the duplicate")
        #expect(metrics.contains("slipway_webhook_deliveries_total{event=\"ping\",status=\"200\"} 1"))
        #expect(metrics.contains("slipway_webhook_signature_failures_total 2"))
        #expect(metrics.contains("slipway_event_log_append_seconds_count 4"), "row-1, its duplicate, the ping, the star")
        #expect(metrics.contains("slipway_runs_queued 0"))

        // Only the accepted deliveries are stored; refused ones left nothing.
        #expect(try daemon.storedDeliveries().map(\.id) == ["row-1", "row-ping", "row-star"])
        // The refusal is a warning naming the peer.
        #expect(daemon.log.contains("warning webhook refused: bad signature peer=127.0.0.1:"))
        #expect(daemon.log.contains("delivery.id=row-1") && daemon.log.contains("event.seq=1"))
    }

    /// Concurrent deliveries are logged once per group commit: every 2xx'd delivery id is in
    /// exactly one "stored" line, beside the event seq it was answered with, and the lines are
    /// written before the answers (the log is read once the last answer is in).
    @Test func concurrentDeliveriesAreLoggedOncePerGroupCommit() throws {
        let daemon = try DaemonProcess()
        try daemon.start()
        let port = daemon.port
        let answered = Mutex<[String: Int]>([:])
        onThreads(16) { worker in
            guard let client = try? RawHTTPClient(port: port) else { return }
            for n in 0..<25 {
                let id = "group-\(worker)-\(n)"
                let body = DaemonProcess.distinct(Self.push, id)
                guard let r = try? client.request("POST", "/webhooks/github", headers: DaemonProcess.headers(for: body, delivery: id), body: body),
                    r.status == 202, let seq = r.json["event"] as? Int
                else { continue }
                answered.withLock { $0[id] = seq }
            }
        }
        let answers = answered.withLock { $0 }
        #expect(answers.count == 400)

        var logged: [String: [Int]] = [:]
        var lines = 0
        for line in daemon.log.split(separator: "\n") where line.contains(" info delivery stored ") || line.contains(" info deliveries stored ") {
            lines += 1
            let fields = line.split(separator: " ")
            let ids = fields.filter { $0.hasPrefix("delivery.id=") }.map { String($0.dropFirst("delivery.id=".count)) }
            let seqs = fields.filter { $0.hasPrefix("event.seq=") }.compactMap { Int($0.dropFirst("event.seq=".count)) }
            #expect(ids.count == seqs.count, "one seq per delivery id: \(line)")
            if line.contains(" deliveries stored ") {
                #expect(line.contains(" count=\(ids.count) "), "\(line)")
            }
            for (id, seq) in zip(ids, seqs) { logged[id, default: []].append(seq) }
        }
        #expect(logged.count == answers.count)
        for (id, seq) in answers {
            #expect(logged[id] == [seq], "\(id) answered with event \(seq), logged as \(logged[id] ?? [])")
        }
        // 16 connections at once: deliveries share commits (else this tested one-delivery lines only).
        #expect(lines < answers.count, "\(lines) stored lines for \(answers.count) deliveries")
    }

    /// A delivery alone is committed by its event loop (no hop to the writer thread), and requests
    /// that end early — refused, over the limit, or dropped mid-body — do not leave it thinking
    /// another request is in progress: after them, one-at-a-time deliveries still commit inline
    /// (the daemon's "event log closed" line counts `inline_commits`).
    @Test func loneDeliveriesCommitOnTheirEventLoop() throws {
        let daemon = try DaemonProcess()
        try daemon.start()
        let port = daemon.port
        let client = try RawHTTPClient(port: port)
        // Refused (bad signature), over the limit (413, closing), dropped mid-body.
        var bad = DaemonProcess.headers(for: Self.push, delivery: "bad-sig")
        bad.removeAll { $0.0 == "X-Hub-Signature-256" }
        bad.append(("X-Hub-Signature-256", "sha256=" + String(repeating: "0", count: 64)))
        #expect(try client.request("POST", "/webhooks/github", headers: bad, body: Self.push).status == 401)
        let big = try RawHTTPClient(port: port)
        try big.send(Data(("POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\n"
            + "X-GitHub-Delivery: big\r\nContent-Length: 50000000\r\n\r\n").utf8))
        #expect(try big.readResponse().status == 413)
        do {
            let dropped = try RawHTTPClient(port: port)
            try dropped.send(Data(("POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\n"
                + "X-GitHub-Delivery: dropped\r\nContent-Length: 5000\r\n\r\n{\"ref\":").utf8))
        }  // closed here, mid-body
        Thread.sleep(forTimeInterval: 0.3)
        for n in 0..<20 {
            let id = "alone-\(n)"
            let body = DaemonProcess.distinct(Self.push, id)
            #expect(try client.request("POST", "/webhooks/github", headers: DaemonProcess.headers(for: body, delivery: id), body: body).status == 202)
        }
        daemon.signal(SIGTERM)
        #expect(daemon.waitForExit() == 0)
        let closed = daemon.log.split(separator: "\n").first { $0.contains("event log closed") }.map(String.init) ?? ""
        let inline = closed.split(separator: " ").first { $0.hasPrefix("inline_commits=") }.flatMap { Int($0.dropFirst("inline_commits=".count)) }
        // The matcher's own commit after a delivery can keep the writer busy when the next one
        // arrives; most of the 20 still commit on their loop.
        #expect((inline ?? 0) >= 10, "\(closed)")
        #expect(try daemon.storedDeliveries().map(\.id).filter { $0.hasPrefix("alone-") }.count == 20)
    }

    /// A body announced over the limit gets 413 before it is sent, and the connection is closed.
    /// Requests pipelined on one connection are answered in order, deliveries and other paths
    /// mixed (deliveries are answered on the event loop, the rest by the router).
    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let daemon = try DaemonProcess()
        try daemon.start()
        let client = try RawHTTPClient(port: daemon.port)
        func raw(_ method: String, _ path: String, _ headers: [(String, String)], _ body: Data) -> Data {
            var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(body.count)\r\n"
            for (k, v) in headers { head += "\(k): \(v)\r\n" }
            return Data((head + "\r\n").utf8) + body
        }
        var batch = Data()
        for n in 1...3 {
            let body = DaemonProcess.distinct(Self.push, "pipe-\(n)")
            batch += raw("POST", "/webhooks/github", DaemonProcess.headers(for: body, delivery: "pipe-\(n)"), body)
            if n == 1 { batch += raw("GET", "/healthz", [], Data()) }
            if n == 2 { batch += raw("POST", "/webhooks/github", DaemonProcess.headers(for: Self.push, delivery: "pipe-bad", hook: "77").dropLast() + [("X-Hub-Signature-256", "sha256=00")], Self.push) }
        }
        try client.send(batch)
        let answers = try (0..<5).map { _ in try client.readResponse() }
        #expect(answers.map(\.status) == [202, 200, 202, 401, 202])
        #expect(answers[0].json["delivery"] as? String == "pipe-1" && answers[2].json["delivery"] as? String == "pipe-2")
        #expect(answers[4].json["delivery"] as? String == "pipe-3")
        #expect(answers[1].json["status"] as? String == "ok")
        #expect(try daemon.storedDeliveries().map(\.id) == ["pipe-1", "pipe-2", "pipe-3"])
    }

    @Test func oversizedBodyIs413AndReadingStops() throws {
        let daemon = try DaemonProcess()
        try daemon.start()
        let client = try RawHTTPClient(port: daemon.port)
        let head =
            "POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\n"
            + "X-GitHub-Delivery: big\r\nContent-Length: 50000000\r\n\r\n"
        try client.send(Data(head.utf8) + Data(repeating: 0x20, count: 4096))
        let response = try client.readResponse()
        #expect(response.status == 413)
        #expect(response.headers["connection"] == "close")
        #expect(client.isClosedByPeer(), "the server stops reading and closes the connection")

        // A body that grows past the limit without announcing it (chunked) is cut off too.
        let chunked = try RawHTTPClient(port: daemon.port)
        let chunkHead = "POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        try chunked.send(Data(chunkHead.utf8))
        let chunk = Data("10000\r\n".utf8) + Data(repeating: 0x20, count: 0x10000) + Data("\r\n".utf8)
        var status = 0
        for _ in 0..<40 {
            if (try? chunked.send(chunk)) == nil { break }
        }
        status = (try? chunked.readResponse().status) ?? 0
        #expect(status == 413)
        #expect(try daemon.storedDeliveries().isEmpty)
        #expect(try RawHTTPClient(port: daemon.port).request("GET", "/healthz").status == 200, "the daemon stays healthy")
    }

    /// Hostile requests each get their answer and leave the daemon healthy: oversized headers,
    /// bodies that lie about their length, invalid UTF-8, deep nesting, odd signature headers.
    @Test func hostileRequestsGetTheirAnswers() throws {
        let daemon = try DaemonProcess(webhookConfig: ["read_timeout: \"2s\""])
        try daemon.start()
        func healthy() throws -> Bool { try RawHTTPClient(port: daemon.port).request("GET", "/healthz").status == 200 }

        // Headers over the parser's 80 KB limit: 400 from the HTTP parser (or the connection closed), nothing stored.
        let big = try RawHTTPClient(port: daemon.port)
        let hugeHeader = "X-Filler: " + String(repeating: "a", count: 200_000)
        let bigAnswer = try? big.request(
            "POST", "/webhooks/github", headers: [("X-GitHub-Event", "push"), (hugeHeader, "")], body: Self.push)
        #expect(bigAnswer == nil || bigAnswer?.status == 400 || bigAnswer?.status == 431, "got \(bigAnswer?.status ?? 0)")
        #expect(try healthy())

        // A body shorter than its Content-Length: cut at the read deadline, nothing stored.
        let short = try RawHTTPClient(port: daemon.port)
        var head = "POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
        for (k, v) in DaemonProcess.headers(for: Self.push, delivery: "short") { head += "\(k): \(v)\r\n" }
        try short.send(Data((head + "\r\n").utf8) + Self.push)
        #expect(short.isClosedByPeer(waiting: 5), "a body that never completes is cut")

        // A body longer than its Content-Length: the declared bytes are the body (bad signature:
        // 401), the rest is not a request (400 or closed). Nothing stored.
        let long = try RawHTTPClient(port: daemon.port)
        var longHead = "POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
        for (k, v) in DaemonProcess.headers(for: Self.push, delivery: "long") { longHead += "\(k): \(v)\r\n" }
        try long.send(Data((longHead + "\r\n").utf8) + Self.push)
        #expect(try long.readResponse().status == 401)
        #expect(try healthy())

        // Invalid UTF-8 and deep nesting, correctly signed: 400 with the reason.
        let invalid = Data([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d])  // {"a":"\xff\xfe"}
        let badUTF8 = try RawHTTPClient(port: daemon.port).request(
            "POST", "/webhooks/github", headers: DaemonProcess.headers(for: invalid, delivery: "utf8"), body: invalid)
        #expect(badUTF8.status == 400, "\(badUTF8.status)")
        #expect((badUTF8.json["error"] as? String)?.contains("UTF-8") == true, "\(badUTF8.json)")
        let deep = Data((String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)).utf8)
        let nested = try RawHTTPClient(port: daemon.port).request(
            "POST", "/webhooks/github", headers: DaemonProcess.headers(for: deep, delivery: "deep"), body: deep)
        #expect(nested.status == 400, "\(nested.status)")
        #expect((nested.json["error"] as? String)?.contains("nest") == true, "\(nested.json)")

        // Signature headers: hex is case-insensitive; a wrong length or a wrong prefix is 401.
        var upper = DaemonProcess.headers(for: Self.push, delivery: "upper")
        upper[upper.count - 1].1 = "sha256=" + upper[upper.count - 1].1.dropFirst(7).uppercased()
        #expect(try RawHTTPClient(port: daemon.port).request("POST", "/webhooks/github", headers: upper, body: Self.push).status == 202)
        for bad in [
            "sha256=abc", "sha256=" + String(repeating: "0", count: 65), "sha512=" + String(repeating: "0", count: 64), "sha256=", "",
        ] {
            var headers = DaemonProcess.headers(for: Self.push, delivery: "bad-\(bad.count)")
            headers[headers.count - 1].1 = bad
            #expect(
                try RawHTTPClient(port: daemon.port).request("POST", "/webhooks/github", headers: headers, body: Self.push).status == 401,
                "\(bad)")
        }
        #expect(try daemon.storedDeliveries().map(\.id) == ["upper"])
        #expect(try healthy())
    }

    /// An outside reader holding a read transaction (a backup, `sqlite3` at the prompt) does not
    /// stop deliveries: WAL lets the writer go on.
    @Test func outsideReaderDoesNotBlockDeliveries() throws {
        let daemon = try DaemonProcess()
        try daemon.start()
        let reader = try SQLiteConnection(path: daemon.databasePath, readOnly: true)
        try reader.execute("BEGIN")
        _ = try reader.prepare("SELECT COUNT(*) FROM events").rows { $0.int(0) }
        let client = try RawHTTPClient(port: daemon.port)
        for n in 0..<50 {
            let r = try client.request(
                "POST", "/webhooks/github", headers: DaemonProcess.headers(for: DaemonProcess.distinct(Self.push, "read-\(n)"), delivery: "read-\(n)"), body: DaemonProcess.distinct(Self.push, "read-\(n)"))
            #expect(r.status == 202)
        }
        try reader.execute("COMMIT")
        #expect(try daemon.storedDeliveries().count == 50)
    }

    /// The disk refusing the write is a 503, never a 2xx; the daemon recovers when it can write again.
    @Test func unwritableLogIs503() throws {
        let daemon = try DaemonProcess()
        try daemon.start()
        let blocker = try SQLiteConnection(path: daemon.databasePath)
        try blocker.execute("BEGIN EXCLUSIVE")
        let client = try RawHTTPClient(port: daemon.port, timeoutSeconds: 30)
        let refused = try client.request(
            "POST", "/webhooks/github", headers: DaemonProcess.headers(for: DaemonProcess.distinct(Self.push, "while-locked"), delivery: "while-locked"), body: DaemonProcess.distinct(Self.push, "while-locked"))
        #expect(refused.status == 503)
        #expect(try client.request("GET", "/healthz").status == 503)
        try blocker.execute("ROLLBACK")
        #expect(try client.request("GET", "/healthz").status == 200)
        let retried = try client.request(
            "POST", "/webhooks/github", headers: DaemonProcess.headers(for: DaemonProcess.distinct(Self.push, "while-locked"), delivery: "while-locked"), body: DaemonProcess.distinct(Self.push, "while-locked"))
        #expect(retried.status == 202, "GitHub's redelivery of the refused delivery is stored")
        #expect(try daemon.storedDeliveries().map(\.id) == ["while-locked"])
    }

    /// 6,000 deliveries from 32 connections, `kill -9` after 4,000 answers (~10,000 WAL frames: the
    /// checkpointer and the writer's tails have run ~10 times), restart: every 2xx'd delivery is stored once.
    @Test func durableAcrossKill9() throws {
        let daemon = try DaemonProcess()
        try daemon.start()
        let total = 6000, connections = 32
        let acked = Mutex<Set<String>>([])
        let unknown = Mutex<Set<String>>([])
        let killed = Atomic<Bool>(false)
        let body = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("github/push.json")))
        let port = daemon.port
        let pid = daemon.process!.processIdentifier

        onThreads(connections) { worker in
            var client = try? RawHTTPClient(port: port)
            for n in stride(from: worker, to: total, by: connections) {
                let id = "kill-\(n)"
                if killed.load(ordering: .relaxed) {
                    unknown.withLock { _ = $0.insert(id) }
                    continue
                }
                do {
                    guard let c = client else { throw RawHTTPClient.Failure(description: "no connection") }
                    let r = try c.request("POST", "/webhooks/github", headers: DaemonProcess.headers(for: DaemonProcess.distinct(body, id), delivery: id), body: DaemonProcess.distinct(body, id))
                    if r.status == 202 || r.status == 200 {
                        acked.withLock { _ = $0.insert(id) }
                    } else {
                        unknown.withLock { _ = $0.insert(id) }
                    }
                } catch {
                    unknown.withLock { _ = $0.insert(id) }
                    client = try? RawHTTPClient(port: port)
                }
                if acked.withLock({ $0.count }) >= 4000, !killed.exchange(true, ordering: .relaxed) {
                    kill(pid, SIGKILL)
                }
            }
        }
        let wasKilled = killed.load(ordering: .relaxed)
        #expect(wasKilled, "the daemon was killed midway")
        daemon.waitForExit()
        let ackedBeforeKill = acked.withLock { $0 }
        #expect(ackedBeforeKill.count >= 4000)
        // The WAL was checkpointed and started over while the daemon ran: it holds ~1,000 frames
        // (~4 MB), not the ~10,000 the deliveries wrote.
        let walBytes = (try? FileManager.default.attributesOfItem(atPath: daemon.databasePath + "-wal")[.size] as? Int) ?? 0
        #expect(walBytes < 16_000_000, "the WAL is \(walBytes) bytes after \(ackedBeforeKill.count) deliveries")

        // Everything acknowledged before the kill survived it.
        let afterKill = try daemon.storedDeliveries()
        let storedIDs = afterKill.map(\.id)
        #expect(Set(storedIDs).count == storedIDs.count, "no delivery stored twice")
        #expect(ackedBeforeKill.isSubset(of: Set(storedIDs)), "every 2xx'd delivery is in events")

        // Restart and redeliver what had no answer (as GitHub's redelivery would).
        try daemon.start()
        let pending = unknown.withLock { Array($0) }.sorted()
        let answers = Mutex<[String: Int]>([:])
        onThreads(connections) { worker in
            guard let client = try? RawHTTPClient(port: port) else { return }
            for id in stride(from: worker, to: pending.count, by: connections).map({ pending[$0] }) {
                let status =
                    (try? client.request("POST", "/webhooks/github", headers: DaemonProcess.headers(for: DaemonProcess.distinct(body, id), delivery: id), body: DaemonProcess.distinct(body, id))
                        .status) ?? 0
                answers.withLock { $0[id] = status }
            }
        }
        let statuses = answers.withLock { $0 }
        #expect(statuses.count == pending.count)
        #expect(statuses.values.allSatisfy { $0 == 202 || $0 == 200 })
        // Those that were committed just before the kill are recognised as duplicates.
        for (id, status) in statuses where status == 200 { #expect(storedIDs.contains(id)) }

        let final = try daemon.storedDeliveries()
        #expect(final.count == total, "all \(total) deliveries stored")
        #expect(Set(final.map(\.id)).count == total, "each exactly once")
        #expect(final.map(\.seq) == Array(1...Int64(total)), "seqs are dense and never reused")
    }

    /// SIGTERM: stop accepting, answer what is in flight, exit 0; every 2xx'd delivery is stored.
    @Test func sigtermDrainsAndExitsZero() throws {
        let daemon = try DaemonProcess()
        try daemon.start()
        let acked = Mutex<Set<String>>([])
        let sent = Atomic<Int>(0)
        let port = daemon.port
        let pid = daemon.process!.processIdentifier
        onThreads(8) { worker in
            guard let client = try? RawHTTPClient(port: port) else { return }
            for n in 0..<200 {
                let id = "term-\(worker)-\(n)"
                guard
                    let r = try? client.request(
                        "POST", "/webhooks/github", headers: DaemonProcess.headers(for: DaemonProcess.distinct(Self.push, id), delivery: id), body: DaemonProcess.distinct(Self.push, id))
                else { return }
                if r.status == 202 { acked.withLock { _ = $0.insert(id) } }
                if sent.add(1, ordering: .relaxed).newValue == 300 { kill(pid, SIGTERM) }
            }
        }
        #expect(daemon.waitForExit() == 0, "exit status 0 after SIGTERM:\n\(daemon.log.suffix(2000))")
        let stored = Set(try daemon.storedDeliveries().map(\.id))
        #expect(acked.withLock { $0 }.isSubset(of: stored))
        #expect(daemon.log.contains("event log closed"))
        #expect((try? RawHTTPClient(port: port)) == nil, "nothing listens after stop")
    }

    /// Restarting resumes the matcher's cursor rather than re-reading the log from the start.
    @Test func restartResumesTheCursor() throws {
        let daemon = try DaemonProcess()
        try daemon.start()
        let client = try RawHTTPClient(port: daemon.port)
        for i in 1...5 {
            _ = try client.request(
                "POST", "/webhooks/github", headers: DaemonProcess.headers(for: DaemonProcess.distinct(Self.push, "c-\(i)"), delivery: "c-\(i)"), body: DaemonProcess.distinct(Self.push, "c-\(i)"))
        }
        daemon.signal(SIGTERM)
        #expect(daemon.waitForExit() == 0)
        let db = try SQLiteConnection(path: daemon.databasePath, readOnly: true)
        #expect(try db.prepare("SELECT seq FROM cursors WHERE name = 'matcher'").rows { $0.int(0) } == [5])
        try daemon.start()
        #expect(daemon.log.contains("matcher following the event log cursor=5"))
    }

    /// The append-only triggers hold for any client, including the sqlite3 CLI.
    @Test func eventsAreAppendOnlyForTheSqlite3CLI() throws {
        let daemon = try DaemonProcess()
        try daemon.start()
        _ = try RawHTTPClient(port: daemon.port).request(
            "POST", "/webhooks/github", headers: DaemonProcess.headers(for: DaemonProcess.distinct(Self.push, "ro-1"), delivery: "ro-1"), body: DaemonProcess.distinct(Self.push, "ro-1"))
        for sql in ["UPDATE events SET event_type = 'x';", "DELETE FROM events;"] {
            let result = try run("/usr/bin/sqlite3", ["-cmd", ".timeout 5000", daemon.databasePath, sql])
            #expect(result.status != 0)
            #expect(result.err.contains("events are append-only"), "\(result.err)")
        }
        #expect(try daemon.storedDeliveries().map(\.id) == ["ro-1"])
    }

    @Test func exposedSecretFilesAreWarnedAbout() throws {
        let daemon = try DaemonProcess()
        let leaky = daemon.dir + "/secrets/registry"
        FileManager.default.createFile(atPath: leaky, contents: Data("hunter2-registry\n".utf8), attributes: [.posixPermissions: 0o644])
        try """
        listen: "127.0.0.1:\(daemon.port)"
        data_dir: "data"
        admin_socket: "slipway.sock"
        webhook: { secret_files: ["secrets/webhook"] }
        registries: [{ server: "r.example", username: "u", password_file: "secrets/registry" }]
        """.write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        try daemon.start()
        #expect(daemon.log.contains("secret file is readable by group or others") && daemon.log.contains("file=\(leaky)"))
        #expect(!daemon.log.contains("file=\(daemon.dir)/secrets/webhook"), "the 0600 one is fine")
        #expect(!daemon.log.contains("hunter2-registry"), "the value is never logged")
    }

    @Test func completionScriptsCoverTheCommands() throws {
        for shell in ["bash", "zsh", "fish"] {
            let script = try run(DaemonProcess.binary, ["--generate-completion-script", shell])
            #expect(script.status == 0)
            for command in ["serve", "task", "run", "logs", "event", "config"] {
                #expect(script.out.contains(command), "\(shell): \(command)")
            }
        }
        let help = try run(DaemonProcess.binary, ["task", "run", "--help"])
        #expect(help.out.contains("--no-logs") && help.out.contains("--branch") && help.out.contains("--commit"))
    }

    @Test func configCheckExitCodes() throws {
        let daemon = try DaemonProcess()
        let ok = try run(DaemonProcess.binary, ["config", "check", "--config", daemon.configPath])
        #expect(ok.status == 0)
        #expect(ok.out.contains("OK (0 tasks"))
        let bad = daemon.dir + "/bad.yaml"
        try "listen: \"127.0.0.1:8080\"\nwebhook:\n  secret_file: [x]\nbuilds:\n  default_timeout: soon\n".write(
            toFile: bad, atomically: true, encoding: .utf8)
        let failed = try run(DaemonProcess.binary, ["config", "check", "--config", bad])
        #expect(failed.status == 1)
        #expect(failed.err.contains("\(bad):3: webhook.secret_file: unknown key 'secret_file' (did you mean 'secret_files'?)"))
        #expect(failed.err.contains("\(bad):5: builds.default_timeout: invalid duration 'soon'"))
        #expect(failed.err.contains("2 problems found"))
        let serve = try run(DaemonProcess.binary, ["serve", "--config", bad])
        #expect(serve.status == 1, "serve refuses a bad config")
        let usage = try run(DaemonProcess.binary, ["config", "check", "--no-such-flag"])
        #expect(usage.status == 2, "usage errors exit 2")
    }
}

enum Fixtures {
    /// The package root.
    static var root: String {
        let file = #filePath
        return String(file[..<file.range(of: "/Tests/")!.lowerBound])
    }

    static func path(_ name: String) -> String { root + "/Tests/Fixtures/" + name }
}
