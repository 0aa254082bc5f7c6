#if canImport(Glibc)
    import Glibc
#endif
import Logging
import Synchronization

/// Writes one line per message to stderr: `time level message key=value …`.
///
/// Metadata keys are stable names (`event.seq`, `delivery.id`, `run.id`); values with spaces
/// or quotes are quoted, so a line splits unambiguously; a list value repeats its key per value.
/// Each line is one `write(2)`, so lines from concurrent tasks never interleave.
public struct LineLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let fd: Int32

    public init(label: String, level: Logger.Level = .info, fd: Int32 = 2) {
        self.label = label
        self.logLevel = level
        self.fd = fd
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = Self.metadata(handler: metadata, provider: metadataProvider, event: event)
        var line = "\(Timestamp.now().iso8601) \(event.level.rawValue) \(event.message)"
        for key in merged.keys.sorted() {
            // A list is the key once per value (as journald repeats a field): `grep key=value` finds each.
            if case .array(let values) = merged[key]! {
                for value in values { line += " \(key)=\(Self.format(value))" }
            } else {
                line += " \(key)=\(Self.format(merged[key]!))"
            }
        }
        line += "\n"
        let bytes = Array(line.utf8)
        Self.writeLock.withLock { _ in _ = UnixIO.writeAll(fd, bytes) }
    }

    private static let writeLock = Mutex(())

    /// Everything a line carries: the handler's metadata, then the provider's, then the call's, then the error.
    static func metadata(handler: Logger.Metadata, provider: Logger.MetadataProvider?, event: LogEvent) -> Logger.Metadata {
        var merged = handler
        if let provided = provider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        if let error = event.error { merged["error"] = "\(error)" }
        return merged
    }

    static func format(_ value: Logger.Metadata.Value, quoted: Bool = true) -> String {
        let text: String
        switch value {
        case .string(let s): text = s
        case .stringConvertible(let c): text = c.description
        case .array(let a): text = "[" + a.map { format($0) }.joined(separator: ",") + "]"
        case .dictionary(let d): text = "{" + d.keys.sorted().map { "\($0)=\(format(d[$0]!))" }.joined(separator: ",") + "}"
        }
        guard quoted else { return text }
        // Bytes, not characters: faster, and a "\r\n" (one character) is caught by its "\n".
        let needsQuotes = text.isEmpty || text.utf8.contains { $0 == 0x20 || $0 == 0x22 || $0 == 0x3d || $0 == 0x0a || $0 == 0x09 || $0 == 0x0d }
        return needsQuotes ? JSONText.quote(text) : text
    }
}
