import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

@testable import SlipwayCore
@testable import SlipwayServer

/// DESIGN.md's webhook table, row by row, against the router in memory.
@Suite struct WebhookRouteTests {
    static let secret = "It's a Secret to Everybody"
    let dir = "/tmp/slipway-route-\(UUID().uuidString.prefix(8))"

    func withApp(
        maxBody: Int = 64 * 1024, busyTimeout: Int32 = 5_000,
        _ body: @Sendable (any TestClientProtocol, EventLog) async throws -> Void
    ) async throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let database = try Database(path: dir + "/slipway.sqlite", busyTimeoutMilliseconds: busyTimeout)
        let log = try EventLog(database: database)
        let intake = WebhookIntake(
            verifier: SignatureVerifier(
                secrets: [WebhookSecret(name: "/etc/slipway/secrets/webhook", value: Array(Self.secret.utf8))], allowSHA1: false),
            maxBodyBytes: maxBody)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let controller = WebhookController(log: log, intake: intake, logger: logger)
        let app = Application(router: WebhookServer.router(controller: controller), logger: logger)
        try await app.test(.router) { client in try await body(client, log) }
    }

    static func signed(
        _ body: String, event: String? = "push", delivery: String? = UUID().uuidString, hook: String = "9",
        contentType: String = "application/json"
    ) -> HTTPFields {
        var h: HTTPFields = [.contentType: contentType]
        if let event { h[HTTPField.Name("X-GitHub-Event")!] = event }
        if let delivery { h[HTTPField.Name("X-GitHub-Delivery")!] = delivery }
        h[HTTPField.Name("X-GitHub-Hook-ID")!] = hook
        h[HTTPField.Name("X-Hub-Signature-256")!] =
            "sha256=" + HMAC.digest(.sha256, key: Array(secret.utf8), message: Array(body.utf8)).hexString
        return h
    }

    static func json(_ response: TestResponse) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))) as? [String: Any] ?? [:]
    }

    static let push = #"{"ref":"refs/heads/main","after":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"}"#

    @Test func newDeliveryIs202AfterCommit() async throws {
        try await withApp { client, log in
            let r = try await client.execute(
                uri: "/webhooks/github", method: .post, headers: Self.signed(Self.push, delivery: "abc-1"),
                body: ByteBuffer(string: Self.push))
            #expect(r.status == .accepted)
            #expect(Self.json(r)["event"] as? Int == 1)
            #expect(Self.json(r)["delivery"] as? String == "abc-1")
            // The answer came after the commit: the row is already readable.
            let stored = try await log.event(seq: 1)
            #expect(stored?.body == Array(Self.push.utf8))
            #expect(stored?.signature == "sha256:/etc/slipway/secrets/webhook")
            #expect(stored?.hookID == "9")
        }
    }

    @Test func repeatedDeliveryIsDuplicate() async throws {
        try await withApp { client, log in
            let headers = Self.signed(Self.push, delivery: "abc-2")
            _ = try await client.execute(uri: "/webhooks/github", method: .post, headers: headers, body: ByteBuffer(string: Self.push))
            let again = try await client.execute(
                uri: "/webhooks/github", method: .post, headers: headers, body: ByteBuffer(string: Self.push))
            #expect(again.status == .ok)
            #expect(Self.json(again)["duplicate"] as? Bool == true)
            #expect(Self.json(again)["event"] as? Int == 1)
            #expect(log.lastCommittedSeq == 1, "nothing appended for the repeat")
        }
    }

    @Test func pingAnswersZenAndIsRecorded() async throws {
        let ping = try String(contentsOfFile: Fixtures.path("github/ping.json"), encoding: .utf8)
        try await withApp { client, log in
            let r = try await client.execute(
                uri: "/webhooks/github", method: .post, headers: Self.signed(ping, event: "ping"), body: ByteBuffer(string: ping))
            #expect(r.status == .ok)
            #expect((Self.json(r)["zen"] as? String)?.isEmpty == false)
            #expect(try await log.event(seq: 1)?.eventType == "ping")
        }
    }

    @Test func badOrMissingSignatureIs401AndStoresNothing() async throws {
        try await withApp { client, log in
            var wrong = Self.signed(Self.push)
            wrong[HTTPField.Name("X-Hub-Signature-256")!] = "sha256=" + String(repeating: "0", count: 64)
            let r1 = try await client.execute(uri: "/webhooks/github", method: .post, headers: wrong, body: ByteBuffer(string: Self.push))
            #expect(r1.status == .unauthorized)
            var missing = Self.signed(Self.push)
            missing[HTTPField.Name("X-Hub-Signature-256")!] = nil
            let r2 = try await client.execute(uri: "/webhooks/github", method: .post, headers: missing, body: ByteBuffer(string: Self.push))
            #expect(r2.status == .unauthorized)
            #expect(Self.json(r2)["error"] as? String == "missing X-Hub-Signature-256 header")
            #expect(try await log.events(after: 0).isEmpty)
        }
    }

    @Test func bodyOverTheLimitIs413() async throws {
        try await withApp(maxBody: 2048) { client, log in
            let big = "{\"pad\":\"" + String(repeating: "x", count: 4096) + "\"}"
            let r = try await client.execute(
                uri: "/webhooks/github", method: .post, headers: Self.signed(big), body: ByteBuffer(string: big))
            #expect(r.status == .contentTooLarge)
            #expect(r.headers[.connection] == "close")
            #expect(try await log.events(after: 0).isEmpty)
        }
    }

    @Test func otherContentTypeIs415() async throws {
        try await withApp { client, _ in
            let r = try await client.execute(
                uri: "/webhooks/github", method: .post, headers: Self.signed(Self.push, contentType: "text/plain"),
                body: ByteBuffer(string: Self.push))
            #expect(r.status == .unsupportedMediaType)
        }
    }

    @Test func formEncodedPayloadIsAccepted() async throws {
        try await withApp { client, log in
            let form = "payload=" + Self.push.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            let r = try await client.execute(
                uri: "/webhooks/github", method: .post, headers: Self.signed(form, contentType: "application/x-www-form-urlencoded"),
                body: ByteBuffer(string: form))
            #expect(r.status == .accepted)
            #expect(try await log.event(seq: 1)?.body == Array(form.utf8))
        }
    }

    @Test func missingHeadersOrBadJSONAre400WithTheReason() async throws {
        try await withApp { client, log in
            let noEvent = try await client.execute(
                uri: "/webhooks/github", method: .post, headers: Self.signed(Self.push, event: nil), body: ByteBuffer(string: Self.push))
            #expect(noEvent.status == .badRequest)
            #expect(Self.json(noEvent)["error"] as? String == "missing X-GitHub-Event header")
            let noDelivery = try await client.execute(
                uri: "/webhooks/github", method: .post, headers: Self.signed(Self.push, delivery: nil), body: ByteBuffer(string: Self.push))
            #expect(Self.json(noDelivery)["error"] as? String == "missing X-GitHub-Delivery header")
            let broken = "{\"ref\": "
            let bad = try await client.execute(
                uri: "/webhooks/github", method: .post, headers: Self.signed(broken), body: ByteBuffer(string: broken))
            #expect(bad.status == .badRequest)
            #expect((Self.json(bad)["error"] as? String)?.hasPrefix("payload is not valid JSON") == true)
            #expect(try await log.events(after: 0).isEmpty)
        }
    }

    @Test func unknownEventTypesAreRecordedAnd202() async throws {
        try await withApp { client, log in
            let r = try await client.execute(
                uri: "/webhooks/github", method: .post, headers: Self.signed("{}", event: "star"), body: ByteBuffer(string: "{}"))
            #expect(r.status == .accepted)
            #expect(try await log.event(seq: 1)?.eventType == "star")
        }
    }

    @Test func unwritableLogIs503AndHealthzSaysSo() async throws {
        try await withApp(busyTimeout: 100) { client, log in
            #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
            let blocker = try SQLiteConnection(path: log.database.path)
            try blocker.execute("BEGIN EXCLUSIVE")
            let r = try await client.execute(
                uri: "/webhooks/github", method: .post, headers: Self.signed(Self.push), body: ByteBuffer(string: Self.push))
            #expect(r.status == .serviceUnavailable)
            #expect(try await client.execute(uri: "/healthz", method: .get).status == .serviceUnavailable)
            try blocker.execute("ROLLBACK")
            #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
            #expect(try await log.events(after: 0).isEmpty, "the refused delivery is not stored")
        }
    }

    @Test func noAdministrativeRoutesOnTheListener() async throws {
        try await withApp { client, _ in
            let admin = try await client.execute(uri: "/v1/runs", method: .get)
            #expect(admin.status == .notFound)
            let getWebhook = try await client.execute(uri: "/webhooks/github", method: .get)
            #expect(getWebhook.status != .ok)
        }
    }
}

enum Fixtures {
    static func path(_ name: String) -> String {
        let file = #filePath
        return String(file[..<file.range(of: "/Tests/")!.lowerBound]) + "/Tests/Fixtures/" + name
    }
}
