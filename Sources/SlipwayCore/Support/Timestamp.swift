#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Wall-clock time in milliseconds since the epoch, formatted as ISO-8601 UTC without Foundation.
public struct Timestamp: Sendable, Hashable, Comparable {
    public var milliseconds: Int64

    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    public static func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(milliseconds: Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000)
    }

    public static func < (a: Timestamp, b: Timestamp) -> Bool { a.milliseconds < b.milliseconds }

    /// `2026-11-26T18:15:00.123Z`
    public var iso8601: String {
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let ms = Int(milliseconds % 1000)
        let year = Int(parts.tm_year) + 1900
        guard (0...9999).contains(year), ms >= 0 else {
            return "\(pad(year, 4))-\(pad(Int(parts.tm_mon) + 1))-\(pad(Int(parts.tm_mday)))T"
                + "\(pad(Int(parts.tm_hour))):\(pad(Int(parts.tm_min))):\(pad(Int(parts.tm_sec))).\(pad(ms, 3))Z"
        }
        // Written into the string's own storage: this runs for every delivery and every log line.
        return String(unsafeUninitializedCapacity: 24) { out in
            func put(_ value: Int, _ width: Int, at start: Int) {
                var v = value
                for i in stride(from: start + width - 1, through: start, by: -1) {
                    out[i] = UInt8(ascii: "0") + UInt8(v % 10)
                    v /= 10
                }
            }
            put(year, 4, at: 0)
            out[4] = UInt8(ascii: "-")
            put(Int(parts.tm_mon) + 1, 2, at: 5)
            out[7] = UInt8(ascii: "-")
            put(Int(parts.tm_mday), 2, at: 8)
            out[10] = UInt8(ascii: "T")
            put(Int(parts.tm_hour), 2, at: 11)
            out[13] = UInt8(ascii: ":")
            put(Int(parts.tm_min), 2, at: 14)
            out[16] = UInt8(ascii: ":")
            put(Int(parts.tm_sec), 2, at: 17)
            out[19] = UInt8(ascii: ".")
            put(ms, 3, at: 20)
            out[23] = UInt8(ascii: "Z")
            return 24
        }
    }

    private func pad(_ value: Int, _ width: Int = 2) -> String {
        let s = String(value)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }
}
