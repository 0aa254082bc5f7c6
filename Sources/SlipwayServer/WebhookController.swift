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

    public init(log: EventLog, intake: WebhookIntake, logger: Logger, diskLow: @escaping @Sendable () -> String? = { nil }) {
        self.diskLow = diskLow
        self.log = log
        self.intake = Mutex(intake)
        self.logger = logger
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

    func receive(_ request: Request, context: SlipwayRequestContext) async throws -> Response {
        let intake = self.intake.withLock { $0 }
        let limit = intake.maxBodyBytes
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > limit {
            return reject(
                .init(status: 413, reason: "body of \(declared) bytes is larger than webhook.max_body_bytes (\(limit) bytes)"), context,
                close: true)
        }
        // Memory before authentication is bounded across all connections: a body reserves its
        // declared length up front (or its bytes as they arrive), and over the budget it is a 503.
        let budget = intake.maxInflightBytes
        var reserved = 0
        defer { if reserved > 0 { inflight.subtract(reserved, ordering: .relaxed) } }
        let overBudget = WebhookIntake.Rejection(
            status: 503, reason: "too many request bytes in flight (webhook.max_inflight_bytes = \(budget)); retry later")
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }) {
            guard reserve(declared, limit: budget) else { return busy(overBudget, context) }
            reserved = declared
        }
        var body: [UInt8] = []
        for try await chunk in request.body {
            if body.count + chunk.readableBytes > limit {
                return reject(
                    .init(status: 413, reason: "body is larger than webhook.max_body_bytes (\(limit) bytes)"), context, close: true)
            }
            let grown = body.count + chunk.readableBytes
            if grown > reserved {
                guard reserve(grown - reserved, limit: budget) else { return busy(overBudget, context) }
                reserved = grown
            }
            body.append(contentsOf: chunk.readableBytesView)
        }
        let headers = request.headers.map { (name: $0.name.canonicalName, value: $0.value) }
        let accepted: WebhookIntake.Accepted
        switch intake.inspect(headers: headers, body: body) {
        case .failure(let rejection): return reject(rejection, context, close: false)
        case .success(let a): accepted = a
        }
        let delivery = accepted.delivery
        var meta: Logger.Metadata = ["delivery.id": "\(delivery.deliveryID)", "event.type": "\(delivery.eventType)"]
        let outcome: AppendOutcome
        let appendStart = ContinuousClock.now
        do {
            outcome = try await log.append(delivery)
            SlipwayMetrics.appendLatency(ContinuousClock.now - appendStart)
        } catch {
            SlipwayMetrics.delivery(event: delivery.eventType, status: 503)
            meta["error"] = "\(error.message)"
            logger.error("delivery not stored: answering 503", metadata: meta)
            return Self.json(.serviceUnavailable, "{\"error\":\(JSONText.quote("the event log cannot be written; retry later"))}")
        }
        meta["event.seq"] = "\(outcome.seq)"
        let ids = "\"event\":\(outcome.seq),\"delivery\":\(JSONText.quote(delivery.deliveryID))"
        switch outcome {
        case .duplicate:
            SlipwayMetrics.delivery(event: delivery.eventType, status: 200)
            logger.info("duplicate delivery: already stored", metadata: meta)
            return Self.json(.ok, "{\(ids),\"duplicate\":true}")
        case .appended:
            meta["signature"] = "\(delivery.signature)"
            logger.info("delivery stored", metadata: meta)
            SlipwayMetrics.delivery(event: delivery.eventType, status: accepted.zen == nil ? 202 : 200)
            if let zen = accepted.zen {
                return Self.json(.ok, "{\(ids),\"zen\":\(JSONText.quote(zen))}")
            }
            return Self.json(.accepted, "{\(ids)}")
        }
    }

    func reject(_ rejection: WebhookIntake.Rejection, _ context: SlipwayRequestContext, close: Bool) -> Response {
        let meta: Logger.Metadata = ["peer": "\(context.peer)", "status": "\(rejection.status)", "reason": "\(rejection.reason)"]
        SlipwayMetrics.delivery(event: "unknown", status: rejection.status)
        if rejection.status == 401 {
            SlipwayMetrics.signatureFailure()
            logger.warning("webhook refused: bad signature", metadata: meta)
        } else {
            logger.notice("webhook refused", metadata: meta)
        }
        var response = Self.json(HTTPResponse.Status(code: rejection.status), "{\"error\":\(JSONText.quote(rejection.reason))}")
        if close { response.headers[.connection] = "close" }
        return response
    }

    /// 503 with `Retry-After`, closing the connection (the rest of the body is not read).
    func busy(_ rejection: WebhookIntake.Rejection, _ context: SlipwayRequestContext) -> Response {
        var response = reject(rejection, context, close: true)
        response.headers[.retryAfter] = "1"
        return response
    }

    static func json(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// Swaps the intake (secrets, limits) used for the next requests.
    public func update(_ newIntake: WebhookIntake) {
        intake.withLock { $0 = newIntake }
    }
}
