/// Sizes like `20GB` (powers of 10: KB, MB, GB, TB) or `512MiB` (powers of 2: KiB, MiB, GiB, TiB); a plain number is bytes.
public enum SizeParser {
    public struct Invalid: Error, CustomStringConvertible {
        public var text: String
        public var description: String {
            "invalid size '\(text)': use a number with a unit, like 500MB, 20GB or 2GiB (KB/MB/GB are powers of 10, KiB/MiB/GiB of 2)"
        }
    }

    public static func parse(_ text: String) throws(Invalid) -> Int64 {
        let trimmed = text.trimmingSpaces
        let digits = trimmed.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        guard !digits.isEmpty, let value = Double(digits), value >= 0 else { throw Invalid(text: text) }
        let unit = String(trimmed.dropFirst(digits.count)).trimmingSpaces
        let units: [String: Double] = [
            "": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
            "KiB": 1024, "MiB": 1_048_576, "GiB": 1_073_741_824, "TiB": 1_099_511_627_776,
        ]
        guard let factor = units[String(unit)] else { throw Invalid(text: text) }
        return Int64(value * factor)
    }

    /// `1.5 GB` style text (powers of 10).
    public static func format(_ bytes: Int64) -> String {
        let units = [("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)]
        for (name, size) in units where Double(bytes) >= size {
            let value = Double(bytes) / size
            return value >= 100 ? "\(Int(value)) \(name)" : "\((value * 10).rounded() / 10) \(name)"
        }
        return "\(bytes) B"
    }
}
