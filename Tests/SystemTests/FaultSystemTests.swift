import Foundation
import SlipwayCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Faults a production host sees: a full disk under data_dir, hostile connections.
@Suite(
    .serialized,
    .enabled(if: getuid() == 0 || TestEnvironment.isCI, "needs root to mount a small tmpfs: run as root (make test in CI does)"))
struct FaultSystemTests {
    /// 1,000 hostile connections (idle, or trickling a header a byte at a time) do not keep a
    /// signed delivery from its 202 within a second.
    @Test func hostileConnectionsDoNotStarveDeliveries() throws {
        let daemon = try DaemonProcess()
        try daemon.start()
        var hostile: [RawHTTPClient] = []
        for n in 0..<1000 {
            let c = try RawHTTPClient(port: daemon.port)
            if n % 2 == 0 { try c.send(Data("POST /webhooks/github HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8)) }
            hostile.append(c)
        }
        for c in hostile.prefix(500) { try? c.send(Data("a".utf8)) }  // a byte more on some: still trickling
        let body = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("github/push.json")))
        let started = Date()
        let answer = try RawHTTPClient(port: daemon.port).request(
            "POST", "/webhooks/github", headers: DaemonProcess.headers(for: DaemonProcess.distinct(body, "legit"), delivery: "legit"), body: DaemonProcess.distinct(body, "legit"))
        let elapsed = Date().timeIntervalSince(started)
        #expect(answer.status == 202)
        #expect(elapsed < 1, "answered in \(elapsed) s with 1,000 hostile connections open")
        #expect(try RawHTTPClient(port: daemon.port).request("GET", "/healthz").status == 200)
        withExtendedLifetime(hostile) {}
    }

    /// A client that trickles its request a byte at a time is cut at `webhook.read_timeout`,
    /// not kept for the minute-long idle timeout; a prompt client on the same daemon is served.
    @Test func slowClientsAreCutAtTheReadDeadline() throws {
        let daemon = try DaemonProcess(webhookConfig: ["read_timeout: \"2s\""])
        try daemon.start()
        let slow = try RawHTTPClient(port: daemon.port, timeoutSeconds: 1)
        let head = Data("POST /webhooks/github HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8)
        let opened = Date()
        var cutAfter: TimeInterval?
        for byte in head + Data(repeating: UInt8(ascii: "a"), count: 40) {
            if (try? slow.send(Data([byte]))) == nil || slow.isClosedByPeer(waiting: 0.25) {
                cutAfter = Date().timeIntervalSince(opened)
                break
            }
        }
        #expect(cutAfter != nil, "a trickling client was never cut")
        if let cutAfter { #expect(cutAfter >= 1.5 && cutAfter < 5, "cut after \(cutAfter) s with read_timeout 2s") }

        // A keep-alive client that answers promptly is unaffected, request after request.
        let body = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("github/push.json")))
        let prompt = try RawHTTPClient(port: daemon.port)
        for n in 0..<3 {
            #expect(
                try prompt.request(
                    "POST", "/webhooks/github", headers: DaemonProcess.headers(for: DaemonProcess.distinct(body, "prompt-\(n)"), delivery: "prompt-\(n)"), body: DaemonProcess.distinct(body, "prompt-\(n)")
                )
                .status == 202)
            usleep(500_000)
        }
        #expect(try daemon.storedDeliveries().map(\.id) == ["prompt-0", "prompt-1", "prompt-2"])
    }

    /// Beyond `webhook.max_connections` a new connection is closed at once; the slots come back
    /// when hostile connections hit the read deadline, and deliveries get through again.
    @Test func connectionCapHoldsAndRecovers() throws {
        let daemon = try DaemonProcess(webhookConfig: ["read_timeout: \"2s\"", "max_connections: 20"])
        try daemon.start()
        var idle: [RawHTTPClient] = []
        for _ in 0..<20 { idle.append(try RawHTTPClient(port: daemon.port, timeoutSeconds: 1)) }
        usleep(200_000)
        let over = try RawHTTPClient(port: daemon.port, timeoutSeconds: 2)
        #expect(over.isClosedByPeer(waiting: 1), "the 21st connection is closed at once")
        #expect(idle.allSatisfy { !$0.isClosedByPeer(waiting: 0) }, "the 20 admitted connections stay open until their deadline")
        #expect(idle.allSatisfy { $0.isClosedByPeer(waiting: 3) }, "idle connections are cut at the read deadline")
        let body = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("github/push.json")))
        let answer = try RawHTTPClient(port: daemon.port).request(
            "POST", "/webhooks/github", headers: DaemonProcess.headers(for: DaemonProcess.distinct(body, "after-cap"), delivery: "after-cap"), body: DaemonProcess.distinct(body, "after-cap"))
        #expect(answer.status == 202)
        let metrics = try RawHTTPClient(port: daemon.port).request("GET", "/metrics")
        let text = String(decoding: metrics.body, as: UTF8.self)
        #expect(text.contains("slipway_webhook_connections_cut_total{reason=\"limit\"}"), "\(text.prefix(2000))")
    }

    /// A full disk: deliveries get 503 (never a 2xx for an event not on disk), nothing is half
    /// written, and service resumes as soon as space returns.
    @Test func diskFullIs503AndRecovers() throws {
        let daemon = try DaemonProcess()
        let data = try daemon.mountDataOnTmpfs(size: "4m")
        defer { daemon.unmountData() }
        try daemon.start()
        let body = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("github/push.json")))
        let client = try RawHTTPClient(port: daemon.port)
        #expect(
            try client.request("POST", "/webhooks/github", headers: DaemonProcess.headers(for: DaemonProcess.distinct(body, "before-full"), delivery: "before-full"), body: DaemonProcess.distinct(body, "before-full"))
                .status == 202)

        // Fill the disk.
        let filler = data + "/filler"
        _ = try run("/bin/dd", ["if=/dev/zero", "of=\(filler)", "bs=64k"])
        var refused = 0
        var statuses: [Int] = []
        for n in 0..<40 {
            let status = try client.request(
                "POST", "/webhooks/github", headers: DaemonProcess.headers(for: DaemonProcess.distinct(body, "full-\(n)"), delivery: "full-\(n)"), body: DaemonProcess.distinct(body, "full-\(n)")
            ).status
            statuses.append(status)
            if status == 503 { refused += 1 }
        }
        #expect(refused > 0, "the disk being full is answered 503: \(statuses)")
        #expect(statuses.allSatisfy { $0 == 202 || $0 == 503 })
        #expect(try client.request("GET", "/healthz").status == 503)
        let accepted = statuses.enumerated().filter { $0.element == 202 }.map { "full-\($0.offset)" }

        // Space returns: the daemon writes again without a restart.
        try FileManager.default.removeItem(atPath: filler)
        try daemon.waitUntil("healthz ok") { (try? client.request("GET", "/healthz").status) == 200 }
        #expect(
            try client.request("POST", "/webhooks/github", headers: DaemonProcess.headers(for: DaemonProcess.distinct(body, "after-full"), delivery: "after-full"), body: DaemonProcess.distinct(body, "after-full"))
                .status == 202)

        // Exactly what got a 2xx is stored, each once; the database is intact.
        let stored = try daemon.storedDeliveries().map(\.id)
        #expect(Set(stored) == Set(["before-full", "after-full"] + accepted))
        #expect(stored.count == Set(stored).count)
        let check = try run("/usr/bin/sqlite3", ["-cmd", ".timeout 5000", daemon.databasePath, "PRAGMA integrity_check;"])
        #expect(check.out == "ok\n")
        daemon.signal(SIGTERM)
        #expect(daemon.waitForExit() == 0)
    }
}
