import Foundation
import Hummingbird
import Logging
import NIOCore
import SlipwayCore
import Synchronization

/// `POST /webhooks/github` and `GET /healthz`: DESIGN.md's webhook listener table.
public final class WebhookController: Sendable {
    public let log: EventLog
    let intake: Mutex<WebhookIntake>
    let logger: Logger
    /// Body bytes held before their signature is checked, all connections together.
    let inflight = Atomic<Int>(0)

    /// Reserves `bytes` of the in-flight budget; false (nothing reserved) when it would go over `limit`.
    func reserve(_ bytes: Int, limit: Int) -> Bool {
        var current = inflight.load(ordering: .relaxed)
        while true {
            guard current + bytes <= limit else { return false }
            let (exchanged, original) = inflight.compareExchange(expected: current, desired: current + bytes, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
    }

    /// Why builds cannot start for lack of disk space (nil when there is room): `/healthz` says `"disk":"low"`.
    let diskLow: @Sendable () -> String?

    /// Logs the deliveries each group commit stored: one line per group at info.
    let stored: StoredDeliveries

    /// Webhook requests between their head and their answer, all connections together.
    let requestsInProgress = Atomic<Int>(0)
    /// A delivery that is the only request in progress commits on its event loop when the
    /// writer is idle (`Database.write(inlineWhenIdle:)`): the quiet server's common case, one
    /// delivery at a time, without a hop to the writer thread and back. `SLIPWAY_INLINE_COMMIT=0`
    /// turns it off (for benchmarks), as `SLIPWAY_WEBHOOK_FAST_PATH=0` does the fast path.
    let inlineCommit: Bool

    /// Whether a delivery received now may commit on its event loop.
    var aloneInProgress: Bool { inlineCommit && requestsInProgress.load(ordering: .relaxed) == 1 }

    public init(
        log: EventLog, intake: WebhookIntake, logger: Logger, diskLow: @escaping @Sendable () -> String? = { nil },
        inlineCommit: Bool = ProcessInfo.processInfo.environment["SLIPWAY_INLINE_COMMIT"] != "0"
    ) {
        self.diskLow = diskLow
        self.inlineCommit = inlineCommit
        self.log = log
        self.intake = Mutex(intake)
        self.logger = logger
        self.stored = StoredDeliveries(database: log.database) { entries in Self.logStored(entries, logger: logger) }
    }

    /// The "stored" line of one group commit, written by the thread that committed it before any
    /// of its deliveries is answered. One delivery: `delivery stored` with its fields, as always. More:
    /// `deliveries stored count=N` with `delivery.id` and `event.seq` once per delivery, in the same
    /// order (repeated `key=value` on stderr, repeated fields in the journal, so `grep
    /// delivery.id=X` and `journalctl DELIVERY_ID=X` find it), and `event.type` / `signature` once
    /// when every delivery has the same.
    static func logStored(_ entries: [StoredDeliveries.Entry], logger: Logger) {
        guard logger.logLevel <= .info, let first = entries.first else { return }
        if entries.count == 1 {
            logger.info(
                "delivery stored",
                metadata: [
                    "delivery.id": "\(first.deliveryID)", "event.seq": "\(first.seq)", "event.type": "\(first.eventType)",
                    "signature": "\(first.signature)",
                ])
            return
        }
        func field(_ value: (StoredDeliveries.Entry) -> String) -> Logger.Metadata.Value {
            let firstValue = value(first)
            if entries.allSatisfy({ value($0) == firstValue }) { return .string(firstValue) }
            return .array(entries.map { .string(value($0)) })
        }
        logger.info(
            "deliveries stored",
            metadata: [
                "count": "\(entries.count)",
                "delivery.id": .array(entries.map { .string($0.deliveryID) }),
                "event.seq": .array(entries.map { .string(String($0.seq)) }),
                "event.type": field(\.eventType), "signature": field(\.signature),
            ])
    }

    /// Registers the listener's routes; nothing administrative is reachable here.
    public func addRoutes(to router: Router<SlipwayRequestContext>) {
        router.post("/webhooks/github") { request, context in
            try await self.receive(request, context: context)
        }
        let log = self.log, logger = self.logger, diskLow = self.diskLow
        router.get("/healthz") { _, _ in
            do throws(DatabaseError) {
                try await log.checkWritable()
                // Deliveries are still accepted when the disk is low; only builds wait.
                if let low = diskLow() {
                    return Self.json(.ok, "{\"status\":\"ok\",\"disk\":\"low\",\"reason\":\(JSONText.quote(low))}")
                }
                return Self.json(.ok, "{\"status\":\"ok\",\"disk\":\"ok\"}")
            } catch {
                logger.error("health check: event log not writable", metadata: ["error": "\(error.message)"])
                return Self.json(.serviceUnavailable, "{\"status\":\"unavailable\",\"reason\":\(JSONText.quote(error.message))}")
            }
        }
    }

    /// What the listener answers: DESIGN.md's table as status, JSON body and connection handling.
    /// The fast path (`WebhookFastPath`, on the event loop) and the router route share it.
    struct Answer: Sendable {
        var status: HTTPResponse.Status
        var json: String
        var close = false
        var retryAfter = false

        var response: Response {
            var response = WebhookController.json(status, json)
            if close { response.headers[.connection] = "close" }
            if retryAfter { response.headers[.retryAfter] = "1" }
            return response
        }
    }

    /// The request's size against `max_body_bytes`, and its reservation of the in-flight budget,
    /// before any of the body is read: nil to go on (having reserved `reserved`), else the answer.
    func admit(declaredLength: Int?, intake: WebhookIntake, peer: String) -> (answer: Answer?, reserved: Int) {
        let limit = intake.maxBodyBytes
        if let declared = declaredLength, declared > limit {
            return (reject(.init(status: 413, reason: "body of \(declared) bytes is larger than webhook.max_body_bytes (\(limit) bytes)"), peer: peer, close: true), 0)
        }
        // Memory before authentication is bounded across all connections: a body reserves its
        // declared length up front (or its bytes as they arrive), and over the budget it is a 503.
        if let declared = declaredLength {
            guard reserve(declared, limit: intake.maxInflightBytes) else { return (busy(intake, peer: peer), 0) }
            return (nil, declared)
        }
        return (nil, 0)
    }

    /// A body that has grown to `size` bytes (with `reserved` reserved so far): nil to go on
    /// (the reservation now `reserved`), else the answer (413 or 503, closing).
    func grow(to size: Int, reserved: inout Int, intake: WebhookIntake, peer: String) -> Answer? {
        if size > intake.maxBodyBytes {
            return reject(.init(status: 413, reason: "body is larger than webhook.max_body_bytes (\(intake.maxBodyBytes) bytes)"), peer: peer, close: true)
        }
        if size > reserved {
            guard reserve(size - reserved, limit: intake.maxInflightBytes) else { return busy(intake, peer: peer) }
            reserved = size
        }
        return nil
    }

    func release(_ reserved: Int) {
        if reserved > 0 { inflight.subtract(reserved, ordering: .relaxed) }
    }

    /// The answer once the append has committed (or failed); logs it and counts it.
    /// `committed` is when the append finished (the latency metric stops there).
    func answer(
        _ result: Result<AppendOutcome, DatabaseError>, accepted: WebhookIntake.Accepted, since start: ContinuousClock.Instant,
        committed: ContinuousClock.Instant = .now
    ) -> Answer {
        let delivery = accepted.delivery
        // Built only for a line that is written: the stored line of a delivery is its group's.
        func meta(_ seq: Int64?) -> Logger.Metadata {
            var meta: Logger.Metadata = ["delivery.id": "\(delivery.deliveryID)", "event.type": "\(delivery.eventType)"]
            if let seq { meta["event.seq"] = "\(seq)" }
            return meta
        }
        let outcome: AppendOutcome
        switch result {
        case .success(let o):
            outcome = o
            SlipwayMetrics.appendLatency(committed - start)
        case .failure(let error):
            SlipwayMetrics.delivery(event: delivery.eventType, status: 503)
            var meta = meta(nil)
            meta["error"] = "\(error.message)"
            logger.error("delivery not stored: answering 503", metadata: meta)
            return Answer(status: .serviceUnavailable, json: "{\"error\":\(JSONText.quote("the event log cannot be written; retry later"))}")
        }
        let ids = "\"event\":\(outcome.seq),\"delivery\":\(JSONText.quote(delivery.deliveryID))"
        switch outcome {
        case .duplicate:
            SlipwayMetrics.delivery(event: delivery.eventType, status: 200)
            logger.info("duplicate delivery: already stored", metadata: meta(outcome.seq))
            return Answer(status: .ok, json: "{\(ids),\"duplicate\":true}")
        case .appended:
            // The info line was its group commit's (`logStored`, before this answer was made).
            logger.debug("delivery answered", metadata: meta(outcome.seq))
            SlipwayMetrics.delivery(event: delivery.eventType, status: accepted.zen == nil ? 202 : 200)
            if let zen = accepted.zen {
                return Answer(status: .ok, json: "{\(ids),\"zen\":\(JSONText.quote(zen))}")
            }
            return Answer(status: .accepted, json: "{\(ids)}")
        }
    }

    /// The route for the router (in-memory tests and any path the fast handler is not in front of).
    func receive(_ request: Request, context: SlipwayRequestContext) async throws -> Response {
        let intake = self.intake.withLock { $0 }
        let peer = context.peer
        var (refused, reserved) = admit(declaredLength: request.headers[.contentLength].flatMap { Int($0) }, intake: intake, peer: peer)
        defer { release(reserved) }
        if let refused { return refused.response }
        var body: [UInt8] = []
        for try await chunk in request.body {
            if let refused = grow(to: body.count + chunk.readableBytes, reserved: &reserved, intake: intake, peer: peer) { return refused.response }
            body.append(contentsOf: chunk.readableBytesView)
        }
        let headers = request.headers.map { (name: $0.name.canonicalName, value: $0.value) }
        let accepted: WebhookIntake.Accepted
        switch intake.inspect(headers: headers, body: body) {
        case .failure(let rejection): return reject(rejection, peer: peer, close: false).response
        case .success(let a): accepted = a
        }
        let start = ContinuousClock.now
        let result: Result<AppendOutcome, DatabaseError>
        do {
            result = .success(try await log.append(accepted.delivery, stored: stored))
        } catch {
            result = .failure(error)
        }
        return answer(result, accepted: accepted, since: start).response
    }

    func reject(_ rejection: WebhookIntake.Rejection, peer: String, close: Bool) -> Answer {
        let meta: Logger.Metadata = ["peer": "\(peer)", "status": "\(rejection.status)", "reason": "\(rejection.reason)"]
        SlipwayMetrics.delivery(event: "unknown", status: rejection.status)
        if rejection.status == 401 {
            SlipwayMetrics.signatureFailure()
            logger.warning("webhook refused: bad signature", metadata: meta)
        } else {
            logger.notice("webhook refused", metadata: meta)
        }
        return Answer(status: HTTPResponse.Status(code: rejection.status), json: "{\"error\":\(JSONText.quote(rejection.reason))}", close: close)
    }

    /// 503 with `Retry-After`, closing the connection (the rest of the body is not read).
    func busy(_ intake: WebhookIntake, peer: String) -> Answer {
        var answer = reject(
            .init(
                status: 503, reason: "too many request bytes in flight (webhook.max_inflight_bytes = \(intake.maxInflightBytes)); retry later"),
            peer: peer, close: true)
        answer.retryAfter = true
        return answer
    }

    static func json(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// The intake (secrets, limits) for the next request.
    var currentIntake: WebhookIntake { intake.withLock { $0 } }

    /// Swaps the intake (secrets, limits) used for the next requests.
    public func update(_ newIntake: WebhookIntake) {
        intake.withLock { $0 = newIntake }
    }
}
