/// Parses durations written like `30m`, `1h`, `1h30m`, `90s`, `500ms`.
public enum DurationParser {
    public struct Invalid: Error, CustomStringConvertible {
        public var text: String
        public var description: String {
            "invalid duration '\(text)': use a number with a unit, like 90s, 30m, 1h, 1h30m or 90d"
        }
    }

    public static func parse(_ text: String) throws(Invalid) -> Duration {
        var total: Int64 = 0
        var rest = Substring(text.trimmingSpaces)
        guard !rest.isEmpty else { throw Invalid(text: text) }
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, let value = Int64(digits), value < 1_000_000 else { throw Invalid(text: text) }
            rest = rest.dropFirst(digits.count)
            let unit = rest.prefix { $0.isLetter }
            rest = rest.dropFirst(unit.count)
            let ms: Int64
            switch unit {
            case "d": ms = 86_400_000
            case "h": ms = 3_600_000
            case "m": ms = 60_000
            case "s": ms = 1000
            case "ms": ms = 1
            default: throw Invalid(text: text)
            }
            total += value * ms
        }
        guard total > 0 else { throw Invalid(text: text) }
        return .milliseconds(total)
    }

    /// `1h30m`, `45s`, `1.5s` style text for a duration.
    public static func format(_ duration: Duration) -> String {
        let ms = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        if ms % 1000 != 0 { return "\(ms)ms" }
        var s = ms / 1000
        var out = ""
        if s >= 3600 { out += "\(s / 3600)h"; s %= 3600 }
        if s >= 60 { out += "\(s / 60)m"; s %= 60 }
        if s > 0 || out.isEmpty { out += "\(s)s" }
        return out
    }
}
