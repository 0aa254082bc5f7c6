/// Reads the few fields the matcher needs from a JSON payload in one pass, skipping the rest
/// without building it (a push payload is 3–25 KB; the matcher wants a dozen short strings).
///
/// Typing follows `JSONDecoder` with optional properties: a missing key or `null` is nil, a value
/// of another type is an error, and when a key repeats the first one counts. Values that are
/// skipped are still checked to be well-formed JSON (`JSONValidator`'s scanner); unlike
/// `JSONDecoder`, a trailing comma is an error (the intake never stores one). The `path` each
/// read takes names the value in errors and is only made for one.
struct JSONFields {
    struct Invalid: Error, CustomStringConvertible {
        var description: String
    }

    private var scanner: JSONValidator.Scanner

    private init(_ bytes: UnsafeBufferPointer<UInt8>) {
        scanner = JSONValidator.Scanner(bytes: bytes)
    }

    /// Runs `read` on the top-level value of `bytes`, then checks nothing but space follows.
    static func read<T>(_ bytes: [UInt8], _ read: (inout JSONFields) throws(Invalid) -> T) throws(Invalid) -> T {
        let result: Result<T, Invalid> = bytes.withUnsafeBufferPointer { buffer in
            var fields = JSONFields(buffer)
            return Result { () throws(Invalid) -> T in
                fields.scanner.skipSpace()
                let value = try read(&fields)
                fields.scanner.skipSpace()
                guard fields.scanner.index == buffer.count else { throw fields.fail("unexpected data after the JSON value") }
                return value
            }
        }
        return try result.get()
    }

    private func fail(_ problem: String) -> Invalid {
        Invalid(description: "invalid JSON at byte \(scanner.index): \(problem)")
    }

    private var isNull: Bool { scanner.peek == UInt8(ascii: "n") }

    /// Skips the current value (checking it is well-formed).
    mutating func skip() throws(Invalid) {
        do {
            try scanner.value(depth: 1)
        } catch {
            throw Invalid(description: error.description)
        }
    }

    /// The members of an object (false for `null`): `member` is called with each key and must
    /// either read the value or return false to have it skipped. A key read once is not offered again.
    mutating func object(at path: @autoclosure () -> String, _ member: (String, inout JSONFields) throws(Invalid) -> Bool) throws(Invalid) -> Bool {
        if isNull {
            try skip()
            return false
        }
        guard scanner.peek == UInt8(ascii: "{") else { throw fail("\(path()) is not an object") }
        var read: [String] = []
        try elements(closedBy: UInt8(ascii: "}")) { (json: inout JSONFields) throws(Invalid) in
            guard json.scanner.peek == UInt8(ascii: "\"") else { throw json.fail("expected a string key") }
            let key = try json.rawString()
            json.scanner.skipSpace()
            guard json.scanner.peek == UInt8(ascii: ":") else { throw json.fail("expected ':'") }
            json.scanner.index += 1
            json.scanner.skipSpace()
            if read.contains(key) {
                try json.skip()
            } else if try member(key, &json) {
                read.append(key)
            } else {
                try json.skip()
            }
        }
        return true
    }

    /// The elements of an array (nothing for `null`).
    mutating func array(at path: @autoclosure () -> String, _ element: (inout JSONFields) throws(Invalid) -> Void) throws(Invalid) {
        if isNull { return try skip() }
        guard scanner.peek == UInt8(ascii: "[") else { throw fail("\(path()) is not an array") }
        try elements(closedBy: UInt8(ascii: "]"), element)
    }

    /// From an object's or array's opening bracket (at the scanner) to its `close`: `element` reads
    /// each member or element (space before it skipped), commas between them.
    private mutating func elements(closedBy close: UInt8, _ element: (inout JSONFields) throws(Invalid) -> Void) throws(Invalid) {
        scanner.index += 1
        scanner.skipSpace()
        if scanner.peek == close {
            scanner.index += 1
            return
        }
        while true {
            scanner.skipSpace()
            try element(&self)
            scanner.skipSpace()
            if scanner.peek == UInt8(ascii: ",") {
                scanner.index += 1
                continue
            }
            guard scanner.peek == close else { throw fail("expected ',' or '\(Character(Unicode.Scalar(close)))'") }
            scanner.index += 1
            return
        }
    }

    /// A string, or nil for `null`.
    mutating func string(at path: @autoclosure () -> String) throws(Invalid) -> String? {
        if isNull {
            try skip()
            return nil
        }
        guard scanner.peek == UInt8(ascii: "\"") else { throw fail("\(path()) is not a string") }
        return try rawString()
    }

    /// A string that must be there (not `null`).
    mutating func requiredString(at path: @autoclosure () -> String) throws(Invalid) -> String {
        guard let s = try string(at: path()) else { throw fail("\(path()) is null") }
        return s
    }

    /// A boolean, or nil for `null`.
    mutating func bool(at path: @autoclosure () -> String) throws(Invalid) -> Bool? {
        switch scanner.peek {
        case UInt8(ascii: "t"), UInt8(ascii: "f"):
            let value = scanner.peek == UInt8(ascii: "t")
            try skip()
            return value
        case UInt8(ascii: "n"):
            try skip()
            return nil
        default:
            throw fail("\(path()) is not a boolean")
        }
    }

    /// An integer, or nil for `null`. As `JSONDecoder`: a number written with a fraction or an
    /// exponent counts when its value is a whole number that fits.
    mutating func int(at path: @autoclosure () -> String) throws(Invalid) -> Int? {
        if isNull {
            try skip()
            return nil
        }
        guard let first = scanner.peek, first == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else {
            throw fail("\(path()) is not a number")
        }
        let start = scanner.index
        try skip()
        let text = String(decoding: UnsafeBufferPointer(rebasing: scanner.bytes[start..<scanner.index]), as: UTF8.self)
        if let value = Int(text) { return value }
        if let value = Double(text), let whole = Int(exactly: value) { return whole }
        throw fail("\(path()) is not an integer that fits")
    }

    /// The string at the scanner (on its opening quote), unescaped.
    private mutating func rawString() throws(Invalid) -> String {
        let start = scanner.index + 1
        do {
            try scanner.string()
        } catch {
            throw Invalid(description: error.description)
        }
        let body = UnsafeBufferPointer(rebasing: scanner.bytes[start..<scanner.index - 1])
        guard body.contains(UInt8(ascii: "\\")) else { return String(decoding: body, as: UTF8.self) }
        return try Self.unescape(body, at: start)
    }

    /// A string's bytes (between the quotes, already checked by the scanner) with escapes resolved.
    private static func unescape(_ body: UnsafeBufferPointer<UInt8>, at offset: Int) throws(Invalid) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(body.count)
        var i = 0
        func hex4(_ at: Int) -> UInt32? {
            guard at + 4 <= body.count else { return nil }
            var v: UInt32 = 0
            for c in body[at..<at + 4] {
                let d: UInt8
                switch c {
                case 0x30...0x39: d = c - 0x30
                case 0x41...0x46: d = c - 0x41 + 10
                case 0x61...0x66: d = c - 0x61 + 10
                default: return nil
                }
                v = v << 4 | UInt32(d)
            }
            return v
        }
        while i < body.count {
            let c = body[i]
            guard c == UInt8(ascii: "\\") else {
                out.append(c)
                i += 1
                continue
            }
            let e = body[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0c)
            case UInt8(ascii: "n"): out.append(0x0a)
            case UInt8(ascii: "r"): out.append(0x0d)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                guard var scalar = hex4(i) else { throw Invalid(description: "invalid JSON at byte \(offset + i): invalid \\u escape") }
                i += 4
                if (0xd800...0xdbff).contains(scalar) {
                    // A high surrogate must be followed by an escaped low one.
                    guard i + 6 <= body.count, body[i] == UInt8(ascii: "\\"), body[i + 1] == UInt8(ascii: "u"),
                        let low = hex4(i + 2), (0xdc00...0xdfff).contains(low)
                    else { throw Invalid(description: "invalid JSON at byte \(offset + i): unpaired surrogate in \\u escape") }
                    scalar = 0x10000 + ((scalar - 0xd800) << 10) + (low - 0xdc00)
                    i += 6
                } else if (0xdc00...0xdfff).contains(scalar) {
                    throw Invalid(description: "invalid JSON at byte \(offset + i): unpaired surrogate in \\u escape")
                }
                out.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
            default: out.append(e)  // \" \\ \/
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
