import Hummingbird
import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// The request context for both listeners: Hummingbird's basics plus the peer's address.
public struct SlipwayRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The peer, for the warning logged on a refused signature.
    public let remoteAddress: SocketAddress?

    /// On the admin socket: the connecting process's credentials (`SO_PEERCRED`), asked for
    /// when the connection is accepted and read by the handler (never on the event loop).
    let peerCredentials: EventLoopFuture<PeerCredentials>?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
        if case .unixDomainSocket = source.channel.localAddress, let provider = source.channel as? any SocketOptionProvider {
            peerCredentials = provider.unsafeGetSocketOption(
                level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(PeerCredentials.option))
        } else {
            peerCredentials = nil
        }
    }

    /// The account name of the process on the other end of the admin socket ("uid 1234" when it
    /// has none), from the kernel, not from anything the client sent.
    func peerUser() async -> String? {
        guard let credentials = try? await peerCredentials?.get() else { return nil }
        return Self.userName(uid: credentials.uid)
    }

    static func userName(uid: uid_t) -> String {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        if getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, let result, let name = result.pointee.pw_name {
            return String(cString: name)
        }
        return "uid \(uid)"
    }

    /// Bodies are read by the webhook route itself, against `webhook.max_body_bytes`.
    public var maxUploadSize: Int { 100 * 1024 * 1024 }

    var peer: String { SocketAddress.peer(remoteAddress) }
}

extension SocketAddress {
    /// A peer as logged: `ip:port`, or the address as NIO prints it, or "unknown".
    static func peer(_ address: SocketAddress?) -> String {
        guard let address else { return "unknown" }
        if let ip = address.ipAddress, let port = address.port { return "\(ip):\(port)" }
        return "\(address)"
    }
}

/// `struct ucred` of Linux (`SO_PEERCRED`), which Glibc's module does not export (it needs _GNU_SOURCE).
struct PeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0

    /// `SO_PEERCRED` on Linux (asm-generic/socket.h).
    static let option: Int32 = 17
}
