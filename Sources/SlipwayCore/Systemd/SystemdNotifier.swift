#if canImport(Glibc)
    import Glibc
#endif

/// sd_notify(3) without libsystemd: datagrams to `$NOTIFY_SOCKET` (a path, or `@` for the abstract namespace).
public struct SystemdNotifier: Sendable {
    public let socketPath: String?

    public init(environment: [String: String]) {
        let path = environment["NOTIFY_SOCKET"]
        socketPath = (path?.isEmpty ?? true) ? nil : path
    }

    public var isEnabled: Bool { socketPath != nil }

    /// `READY=1\nSTATUS=…\n`: one assignment per line; newlines in values become spaces.
    public static func encode(_ assignments: [(String, String)]) -> [UInt8] {
        var out: [UInt8] = []
        for (key, value) in assignments {
            out += Array(key.utf8) + [UInt8(ascii: "=")]
            out += value.utf8.map { $0 == 0x0a ? 0x20 : $0 }
            out.append(0x0a)
        }
        return out
    }

    /// Sends the assignments; false when there is no socket or the send failed (never fatal).
    @discardableResult
    public func notify(_ assignments: [(String, String)]) -> Bool {
        guard let socketPath else { return false }
        return UnixIO.sendDatagram(Self.encode(assignments), to: socketPath)
    }

    public func ready(status: String) { notify([("READY", "1"), ("STATUS", status)]) }
    public func status(_ text: String) { notify([("STATUS", text)]) }
    public func reloading() { notify([("RELOADING", "1"), ("MONOTONIC_USEC", "\(Self.monotonicMicroseconds())")]) }
    public func stopping() { notify([("STOPPING", "1")]) }
    public func watchdog() { notify([("WATCHDOG", "1")]) }

    /// The watchdog interval systemd asks for (`WATCHDOG_USEC`, for this process per `WATCHDOG_PID`).
    public static func watchdogInterval(environment: [String: String]) -> Duration? {
        guard let text = environment["WATCHDOG_USEC"], let usec = Int64(text), usec > 0 else { return nil }
        if let pid = environment["WATCHDOG_PID"], let value = Int32(pid), value != getpid() { return nil }
        return .microseconds(usec)
    }

    static func monotonicMicroseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }
}
