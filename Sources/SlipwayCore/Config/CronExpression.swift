/// A 5-field cron expression (minute hour day-of-month month day-of-week), evaluated in UTC:
/// `*`, lists `1,5`, ranges `1-5`, steps `*/15` and `10-30/5`; day-of-week 0–7 (0 and 7 are Sunday).
/// As in Vixie cron, when both day fields are restricted a day matching either one is a match.
public struct CronExpression: Sendable, Equatable, CustomStringConvertible {
    public let text: String
    let minutes: Set<Int>
    let hours: Set<Int>
    let days: Set<Int>
    let months: Set<Int>
    let weekdays: Set<Int>
    let dayRestricted: Bool
    let weekdayRestricted: Bool

    public var description: String { text }

    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    public init(_ text: String) throws(Invalid) {
        self.text = text
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw Invalid(description: "cron '\(text)' must have 5 fields (minute hour day-of-month month day-of-week), it has \(fields.count)")
        }
        func field(_ index: Int, _ name: String, _ range: ClosedRange<Int>) throws(Invalid) -> Set<Int> {
            do { return try Self.parse(fields[index], range: range) } catch {
                throw Invalid(description: "cron '\(text)': \(name) field '\(fields[index])': \(error.description)")
            }
        }
        minutes = try field(0, "minute", 0...59)
        hours = try field(1, "hour", 0...23)
        days = try field(2, "day-of-month", 1...31)
        months = try field(3, "month", 1...12)
        weekdays = Set(try field(4, "day-of-week", 0...7).map { $0 % 7 })
        dayRestricted = fields[2] != "*"
        weekdayRestricted = fields[4] != "*"
    }

    static func parse(_ field: String, range: ClosedRange<Int>) throws(Invalid) -> Set<Int> {
        var out: Set<Int> = []
        for item in field.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { throw Invalid(description: "empty list item") }
            var body = Substring(item)
            var step = 1
            if let slash = body.firstIndex(of: "/") {
                guard let s = Int(body[body.index(after: slash)...]), s > 0 else { throw Invalid(description: "step must be a positive number") }
                step = s
                body = body[..<slash]
            }
            var low = range.lowerBound
            var high = range.upperBound
            if body != "*" {
                if let dash = body.firstIndex(of: "-") {
                    guard let a = Int(body[..<dash]), let b = Int(body[body.index(after: dash)...]) else {
                        throw Invalid(description: "'\(body)' is not a range of numbers")
                    }
                    (low, high) = (a, b)
                } else {
                    guard let v = Int(body) else { throw Invalid(description: "'\(body)' is not a number") }
                    (low, high) = (v, step > 1 ? range.upperBound : v)
                }
                guard range.contains(low), range.contains(high), low <= high else {
                    throw Invalid(description: "\(low)-\(high) is outside \(range.lowerBound)-\(range.upperBound)")
                }
            }
            out.formUnion(stride(from: low, through: high, by: step))
        }
        return out
    }

    /// Whether the minute starting at `minute` (seconds since 1970, UTC) is a slot.
    public func matches(epochMinute minute: Int64) -> Bool {
        let c = UTCCalendar.components(epochSeconds: minute * 60)
        guard minutes.contains(c.minute), hours.contains(c.hour), months.contains(c.month) else { return false }
        let dayOK = days.contains(c.day)
        let weekdayOK = weekdays.contains(c.weekday)
        if dayRestricted && weekdayRestricted { return dayOK || weekdayOK }
        return dayOK && weekdayOK
    }

    /// The first slot strictly after `epochSeconds` (UTC), within `limit` years; nil when none (`0 0 30 2 *`).
    public func next(after epochSeconds: Int64, limitYears: Int = 5) -> Int64? {
        var minute = epochSeconds / 60 + 1
        let end = minute + Int64(limitYears) * 366 * 24 * 60
        while minute < end {
            let c = UTCCalendar.components(epochSeconds: minute * 60)
            if !months.contains(c.month) {
                // Jump to the first minute of the next month.
                minute = UTCCalendar.epochSeconds(year: c.month == 12 ? c.year + 1 : c.year, month: c.month % 12 + 1, day: 1) / 60
                continue
            }
            if matches(epochMinute: minute) { return minute * 60 }
            // Not this hour: skip to the next one.
            minute += hours.contains(c.hour) ? 1 : Int64(60 - c.minute)
        }
        return nil
    }
}

/// Proleptic Gregorian calendar arithmetic in UTC (no time zones, no DST: cron here is UTC).
enum UTCCalendar {
    struct Components: Equatable {
        var year, month, day, hour, minute, weekday: Int
    }

    static func components(epochSeconds: Int64) -> Components {
        let days = Int(floorDiv(epochSeconds, 86_400))
        let secondsOfDay = Int(epochSeconds - Int64(days) * 86_400)
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        let weekday = ((days % 7) + 11) % 7  // 1970-01-01 was a Thursday (4)
        return Components(
            year: year, month: month, day: day, hour: secondsOfDay / 3600, minute: (secondsOfDay % 3600) / 60, weekday: weekday)
    }

    static func epochSeconds(year: Int, month: Int, day: Int, hour: Int = 0, minute: Int = 0) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60)
    }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : -((-a + b - 1) / b) }
}
