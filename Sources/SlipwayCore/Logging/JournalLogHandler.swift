#if canImport(Glibc)
    import Glibc
#endif
import Logging

/// Logs to journald through its native protocol, with structured fields.
///
/// Used when `$JOURNAL_STREAM` names the device and inode of our stderr (systemd connected it to
/// the journal). DESIGN.md's fields come from the metadata: `run.id` → `RUN_ID`, `task` → `TASK`,
/// `event.seq` → `EVENT_SEQ`, `delivery.id` → `DELIVERY_ID`, `repo` → `REPO`, `commit` → `COMMIT`;
/// other keys become upper-case fields with `_` for anything else. A list value is its field repeated.
public struct JournalLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    public var metadataProvider: Logger.MetadataProvider?
    let socketPath: String

    public static let defaultSocket = "/run/systemd/journal/socket"

    public init(level: Logger.Level = .info, socketPath: String = JournalLogHandler.defaultSocket) {
        self.logLevel = level
        self.socketPath = socketPath
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// True when stderr is the journal stream systemd set up for us.
    public static func stderrIsJournal(environment: [String: String]) -> Bool {
        guard let value = environment["JOURNAL_STREAM"] else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let dev = UInt64(parts[0]), let ino = UInt64(parts[1]) else { return false }
        var st = stat()
        guard fstat(2, &st) == 0 else { return false }
        return UInt64(st.st_dev) == dev && UInt64(st.st_ino) == ino
    }

    static let fieldNames: [String: String] = [
        "run.id": "RUN_ID", "task": "TASK", "event.seq": "EVENT_SEQ", "delivery.id": "DELIVERY_ID", "repo": "REPO", "commit": "COMMIT", "engine": "ENGINE",
    ]

    /// A journal field name for a metadata key: DESIGN's names, else upper-case with `_`.
    static func fieldName(_ key: String) -> String {
        if let known = fieldNames[key] { return known }
        var name = String(
            key.uppercased().unicodeScalars.map { ("A"..."Z").contains($0) || ("0"..."9").contains($0) ? Character($0) : "_" })
        while name.hasPrefix("_") { name.removeFirst() }  // leading '_' is reserved for trusted fields
        if name.isEmpty || name.first!.isNumber { name = "F" + name }
        return String(name.prefix(64))
    }

    /// syslog priority for a level (journald's PRIORITY).
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// The datagram: `FIELD=value\n`, or for values with a newline `FIELD\n` + 64-bit little-endian length + value + `\n`.
    public static func encode(_ fields: [(String, String)]) -> [UInt8] {
        var out: [UInt8] = []
        for (name, value) in fields {
            let bytes = Array(value.utf8)
            out += Array(name.utf8)
            if bytes.contains(0x0a) {
                out.append(0x0a)
                var length = UInt64(bytes.count).littleEndian
                withUnsafeBytes(of: &length) { out += $0 }
                out += bytes
            } else {
                out.append(UInt8(ascii: "="))
                out += bytes
            }
            out.append(0x0a)
        }
        return out
    }

    func fields(for event: LogEvent) -> [(String, String)] {
        let merged = LineLogHandler.metadata(handler: metadata, provider: metadataProvider, event: event)
        var fields: [(String, String)] = [
            ("MESSAGE", "\(event.message)"), ("PRIORITY", "\(Self.priority(event.level))"), ("SYSLOG_IDENTIFIER", "slipway"),
        ]
        for key in merged.keys.sorted() {
            // A list is the field once per value: journald keeps them all, and `journalctl FIELD=v` matches any.
            if case .array(let values) = merged[key]! {
                for value in values { fields.append((Self.fieldName(key), LineLogHandler.format(value, quoted: false))) }
            } else {
                fields.append((Self.fieldName(key), LineLogHandler.format(merged[key]!, quoted: false)))
            }
        }
        return fields
    }

    public func log(event: LogEvent) {
        let payload = Self.encode(fields(for: event))
        if !UnixIO.sendDatagram(payload, to: socketPath) {
            // The journal refused (too large, gone): the line still reaches stderr, which is the journal stream.
            LineLogHandler(label: "slipway", level: logLevel).log(event: event)
        }
    }
}
