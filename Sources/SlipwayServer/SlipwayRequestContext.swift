import Hummingbird
import NIOCore

/// The request context for both listeners: Hummingbird's basics plus the peer's address.
public struct SlipwayRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The peer, for the warning logged on a refused signature.
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }

    /// Bodies are read by the webhook route itself, against `webhook.max_body_bytes`.
    public var maxUploadSize: Int { 100 * 1024 * 1024 }

    var peer: String {
        guard let remoteAddress else { return "unknown" }
        if let ip = remoteAddress.ipAddress, let port = remoteAddress.port { return "\(ip):\(port)" }
        return "\(remoteAddress)"
    }
}
