#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Small POSIX file helpers, so config and secrets need no Foundation.
public enum FileText {
    public struct Failure: Error, CustomStringConvertible {
        public var path: String
        public var reason: String
        public var description: String { "\(path): \(reason)" }

        public init(path: String, reason: String) {
            self.path = path
            self.reason = reason
        }
    }

    /// The whole file as bytes.
    public static func readBytes(_ path: String) throws(Failure) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(path: path, reason: String(cString: strerror(errno)))
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }

    /// The whole file as UTF-8 text.
    public static func read(_ path: String) throws(Failure) -> String {
        let bytes = try readBytes(path)
        guard let s = String(validating: bytes, as: UTF8.self) else { throw Failure(path: path, reason: "not UTF-8 text") }
        return s
    }

    /// A secret file's value with trailing newlines and spaces removed (as `echo > file` leaves them).
    public static func readSecret(_ path: String) throws(Failure) -> [UInt8] {
        var bytes = try readBytes(path)
        while let last = bytes.last, last == 10 || last == 13 || last == 32 || last == 9 { bytes.removeLast() }
        guard !bytes.isEmpty else { throw Failure(path: path, reason: "the secret file is empty") }
        return bytes
    }

    /// True when group or others may read the file.
    public static func isGroupOrWorldReadable(_ path: String) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0 else { return false }
        return st.st_mode & (S_IRGRP | S_IROTH) != 0
    }

    public static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// `path` if absolute, else `base/path`, with `.` and `name/..` removed lexically.
    public static func resolve(_ path: String, against base: String) -> String {
        normalize(path.hasPrefix("/") || base == "." ? path : "\(base)/\(path)")
    }

    /// `path` made absolute against the current directory, normalised.
    public static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return normalize(path) }
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buffer, buffer.count) != nil else { return normalize(path) }
        let cwd = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return normalize("\(cwd)/\(path)")
    }

    /// Removes `.`, empty parts and `name/..` pairs without touching the disk.
    public static func normalize(_ path: String) -> String {
        let absolute = path.hasPrefix("/")
        var parts: [Substring] = []
        for part in path.split(separator: "/") where part != "." {
            if part == "..", let last = parts.last, last != ".." {
                parts.removeLast()
            } else if part == "..", absolute {
                continue
            } else {
                parts.append(part)
            }
        }
        let joined = parts.joined(separator: "/")
        return absolute ? "/" + joined : (joined.isEmpty ? "." : joined)
    }

    /// Regular files in `dir` whose names end with `suffix`, sorted; empty when the directory is missing.
    public static func list(_ dir: String, suffix: String) -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasSuffix(suffix), !name.hasPrefix(".") { names.append(name) }
        }
        return names.sorted().map { "\(dir)/\($0)" }
    }

    /// Creates `path` and its parents with `mode`; succeeds when it already exists.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o750) throws(Failure) {
        var current = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            current += "/\(part)"
            if mkdir(current, mode) != 0 && errno != EEXIST {
                throw Failure(path: current, reason: String(cString: strerror(errno)))
            }
        }
    }
}
