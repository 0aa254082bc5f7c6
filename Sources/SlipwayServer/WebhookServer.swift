import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import SlipwayCore

/// Builds the webhook listener as a Hummingbird `Application` (a `Service`).
public enum WebhookServer {
    /// The router, usable in memory by tests.
    public static func router(controller: WebhookController, metrics: MetricsEndpoint? = nil) -> Router<SlipwayRequestContext> {
        let router = Router(context: SlipwayRequestContext.self)
        controller.addRoutes(to: router)
        metrics?.addRoutes(to: router)
        return router
    }

    /// The listener application bound to `host:port`; `onRunning` receives the bound port.
    public static func application(
        controller: WebhookController, metrics: MetricsEndpoint? = nil, host: String, port: Int,
        readTimeout: Duration = .seconds(10), gate: ConnectionGate = ConnectionGate(limit: 4096), tls: TLSCertificates? = nil,
        fastPath: Bool = ProcessInfo.processInfo.environment["SLIPWAY_WEBHOOK_FAST_PATH"] != "0",
        logger: Logger, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        let http: HTTPServerBuilder = .http1(
            configuration: .init(
                additionalChannelHandlers: [
                    RequestDeadlineHandler(readTimeout: .nanoseconds(readTimeout.nanoseconds), gate: gate),
                    CloseAfterResponseHandler(),
                ] + (fastPath ? [WebhookFastPath(controller: controller)] : []), idleTimeout: .seconds(60)))
        // With `tls:` every path is HTTPS only (no plain listener beside it).
        let server = try tls.map { try HTTPServerBuilder.tls(http, tlsConfiguration: $0.configuration) } ?? http
        return Application(
            router: router(controller: controller, metrics: metrics),
            server: server,
            configuration: .init(address: .hostname(host, port: port), serverName: nil, reuseAddress: true),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: logger
        )
    }
}
