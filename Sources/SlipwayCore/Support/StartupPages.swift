#if canImport(Glibc)
    import Glibc
#endif

/// Gives back the code pages only start-up ran.
///
/// Start-up runs code from every module (configuration, the schema upgrade, NIO, TLS, the admin
/// and web routers being built) and the kernel maps code around each fault — 64 KB, and on
/// kernels that map whole large page-cache folios, up to megabytes — so the idle daemon kept code
/// resident that it would not run again. Once the daemon is ready, `release()` asks the kernel to
/// page out the process's read-only file mappings (`MADV_PAGEOUT`, Linux ≥ 5.4): the executable's
/// code and constants and the shared libraries' (pages other processes also map are left alone).
/// They are clean file pages: nothing is written, they are freed, and whatever runs afterwards
/// faults back in from the page cache or the file. Behaviour does not change; a kernel that
/// refuses leaves everything as it was. `SLIPWAY_TRIM=0` turns it off (to measure the difference).
public enum StartupPages {
    /// Bytes of mappings the kernel accepted to page out (0 when it refused, or when turned off).
    @discardableResult
    public static func release(environment: [String: String]) -> Int {
        guard environment["SLIPWAY_TRIM"] != "0", let maps = try? FileText.read("/proc/self/maps") else { return 0 }
        var released = 0
        for line in maps.split(separator: "\n") {
            // "start-end perms offset dev inode path": read-only, private, backed by a file.
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count == 6, fields[1].hasPrefix("r"), !fields[1].contains("w"), fields[1].hasSuffix("p"),
                fields[5].trimmingPrefix(while: { $0 == " " }).hasPrefix("/")
            else { continue }
            let bounds = fields[0].split(separator: "-")
            guard bounds.count == 2, let start = UInt(bounds[0], radix: 16), let end = UInt(bounds[1], radix: 16), end > start,
                let address = UnsafeMutableRawPointer(bitPattern: start)
            else { continue }
            if madvise(address, Int(end - start), madvisePageout) == 0 { released += Int(end - start) }
        }
        return released
    }

    /// `MADV_PAGEOUT` from linux/mman.h (Glibc's headers on older systems do not name it).
    private static let madvisePageout: Int32 = 21
}
