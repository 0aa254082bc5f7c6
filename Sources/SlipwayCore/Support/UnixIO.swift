#if canImport(Glibc)
    import Glibc
#endif

/// The few raw POSIX I/O operations Slipway needs in more than one place.
public enum UnixIO {
    /// Writes all of `bytes` to `fd`, retrying short writes and EINTR; false if the fd refused.
    @discardableResult
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }

    @discardableResult
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { writeAll(fd, $0) }
    }

    /// Sends one datagram to the unix socket at `path` (a leading `@` means the abstract namespace).
    public static func sendDatagram(_ payload: [UInt8], to path: String) -> Bool {
        // One socket for the process (made on first use, close-on-exec), not one per datagram:
        // the journal gets a datagram per log line, and socket() + close() cost more than the send.
        let fd = datagramSocket
        guard fd >= 0 else { return false }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var pathBytes = Array(path.utf8)
        let abstract = pathBytes.first == UInt8(ascii: "@")
        if abstract { pathBytes[0] = 0 }
        guard pathBytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return false }
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: pathBytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + pathBytes.count + (abstract ? 0 : 1))
        while true {
            let sent = payload.withUnsafeBytes { bytes in
                withUnsafePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes.baseAddress, bytes.count, 0, $0, length) }
                }
            }
            if sent < 0 && errno == EINTR { continue }
            return sent == payload.count
        }
    }

    /// The unbound datagram socket `sendDatagram` sends from (each send names its destination,
    /// so a journal that restarts at the same path is reached again).
    private static let datagramSocket: Int32 = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
}
