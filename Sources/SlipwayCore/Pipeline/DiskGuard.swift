import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Whether there is room to build: free space on `data_dir`'s filesystem against
/// `retention.min_free_disk`. Under it no new build starts; queued runs say why.
public final class DiskGuard: Sendable {
    private let lowReason = Mutex<String?>(nil)

    public init() {}

    /// Why no build may start now (it names the disk), or nil when there is room.
    public var low: String? { lowReason.withLock { $0 } }

    /// Free bytes for unprivileged writers on the filesystem of `path`.
    public static func freeBytes(_ path: String) -> Int64? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }

    /// Checks `path` now; returns the change (true: became low, false: recovered, nil: same).
    @discardableResult
    public func check(_ path: String, minimum: Int64) -> Bool? {
        guard let free = Self.freeBytes(path) else { return nil }
        SlipwayMetrics.diskFree(where: "data_dir", bytes: free)
        let reason =
            free < minimum
            ? "waiting for disk space: data_dir \(path) has \(SizeParser.format(free)) free, under retention.min_free_disk (\(SizeParser.format(minimum)))"
            : nil
        return lowReason.withLock { current in
            defer { current = reason }
            if (current == nil) == (reason == nil) { return nil }
            return reason != nil
        }
    }
}
