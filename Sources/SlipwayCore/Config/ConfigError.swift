/// A problem in a config file, with the place and key it concerns.
public struct ConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    public var file: String
    /// 1-based line, or 0 when the problem concerns the whole file.
    public var line: Int
    /// The dotted key path (`tasks[0].context`), or "" for the file itself.
    public var key: String
    public var message: String

    public init(file: String, line: Int, key: String, message: String) {
        self.file = file
        self.line = line
        self.key = key
        self.message = message
    }

    /// `slipway.yaml:14: tasks[0].context: context has no branch …`
    public var description: String {
        let place = line > 0 ? "\(file):\(line)" : file
        return key.isEmpty ? "\(place): \(message)" : "\(place): \(key): \(message)"
    }
}

/// Every problem found in a configuration; loading reports them all at once.
public struct ConfigErrors: Error, CustomStringConvertible, Sendable {
    /// The problems, by file and then line.
    public var errors: [ConfigError]

    public init(errors: [ConfigError]) {
        self.errors = errors.enumerated().sorted { a, b in
            (a.element.file, a.element.line, a.offset) < (b.element.file, b.element.line, b.offset)
        }.map(\.element)
    }

    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
