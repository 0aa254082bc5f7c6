/// Checks that bytes are one well-formed JSON value, without building it.
///
/// The receiver only needs to know a payload parses; the matcher decodes it later. Nesting is
/// capped so hostile input cannot exhaust the stack.
public enum JSONValidator {
    public static let maxDepth = 512

    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public var offset: Int
        public var problem: String
        public var description: String { "invalid JSON at byte \(offset): \(problem)" }
    }

    public static func validate(_ bytes: UnsafeRawBufferPointer) throws(Invalid) {
        var scanner = Scanner(bytes: bytes.bindMemory(to: UInt8.self))
        scanner.skipSpace()
        try scanner.value(depth: 0)
        scanner.skipSpace()
        if scanner.index != scanner.bytes.count { throw scanner.fail("unexpected data after the JSON value") }
    }

    public static func validate(_ bytes: [UInt8]) throws(Invalid) {
        let result = bytes.withUnsafeBytes { raw in Result { () throws(Invalid) in try validate(raw) } }
        try result.get()
    }

    struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        func fail(_ problem: String) -> Invalid { Invalid(offset: index, problem: problem) }

        var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipSpace() {
            while let c = peek, c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09 { index += 1 }
        }

        mutating func expect(_ c: UInt8) throws(Invalid) {
            guard peek == c else { throw fail("expected '\(Character(Unicode.Scalar(c)))'") }
            index += 1
        }

        mutating func value(depth: Int) throws(Invalid) {
            guard depth < JSONValidator.maxDepth else { throw fail("nested deeper than \(JSONValidator.maxDepth) levels") }
            guard let c = peek else { throw fail("unexpected end of input") }
            switch c {
            case UInt8(ascii: "{"):
                index += 1
                skipSpace()
                if peek == UInt8(ascii: "}") { index += 1; return }
                while true {
                    skipSpace()
                    guard peek == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                    try string()
                    skipSpace()
                    try expect(UInt8(ascii: ":"))
                    skipSpace()
                    try value(depth: depth + 1)
                    skipSpace()
                    if peek == UInt8(ascii: ",") { index += 1; continue }
                    try expect(UInt8(ascii: "}"))
                    return
                }
            case UInt8(ascii: "["):
                index += 1
                skipSpace()
                if peek == UInt8(ascii: "]") { index += 1; return }
                while true {
                    skipSpace()
                    try value(depth: depth + 1)
                    skipSpace()
                    if peek == UInt8(ascii: ",") { index += 1; continue }
                    try expect(UInt8(ascii: "]"))
                    return
                }
            case UInt8(ascii: "\""): try string()
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            default: try number()
            }
        }

        mutating func literal(_ word: StaticString) throws(Invalid) {
            let n = word.utf8CodeUnitCount
            guard index + n <= bytes.count,
                UnsafeBufferPointer(start: word.utf8Start, count: n).elementsEqual(bytes[index..<index + n])
            else { throw fail("invalid literal") }
            index += n
        }

        mutating func string() throws(Invalid) {
            index += 1  // opening quote
            while let c = peek {
                index += 1
                switch c {
                case UInt8(ascii: "\""): return
                case UInt8(ascii: "\\"):
                    guard let e = peek else { throw fail("unterminated escape") }
                    index += 1
                    if e == UInt8(ascii: "u") {
                        for _ in 0..<4 {
                            guard let h = peek, isHex(h) else { throw fail("invalid \\u escape") }
                            index += 1
                        }
                    } else if !"\"\\/bfnrt".utf8.contains(e) {
                        throw fail("invalid escape")
                    }
                case 0..<0x20: throw fail("control character in string")
                case 0x80...:
                    index -= 1
                    try utf8Sequence()
                default: break
                }
            }
            throw fail("unterminated string")
        }

        /// One multi-byte UTF-8 scalar, rejecting overlongs and surrogates.
        mutating func utf8Sequence() throws(Invalid) {
            let lead = bytes[index]
            let (count, minimum): (Int, UInt32) =
                switch lead {
                case 0xc2...0xdf: (2, 0x80)
                case 0xe0...0xef: (3, 0x800)
                case 0xf0...0xf4: (4, 0x10000)
                default: (0, 0)
                }
            guard count > 0, index + count <= bytes.count else { throw fail("invalid UTF-8") }
            var scalar = UInt32(lead) & (count == 2 ? 0x1f : count == 3 ? 0x0f : 0x07)
            for i in 1..<count {
                let b = bytes[index + i]
                guard b & 0xc0 == 0x80 else { throw fail("invalid UTF-8") }
                scalar = scalar << 6 | UInt32(b & 0x3f)
            }
            guard scalar >= minimum, scalar <= 0x10ffff, !(0xd800...0xdfff).contains(scalar) else { throw fail("invalid UTF-8") }
            index += count
        }

        func isHex(_ c: UInt8) -> Bool {
            (0x30...0x39).contains(c) || (0x41...0x46).contains(c) || (0x61...0x66).contains(c)
        }

        mutating func number() throws(Invalid) {
            let start = index
            if peek == UInt8(ascii: "-") { index += 1 }
            guard let first = peek, (0x30...0x39).contains(first) else { index = start; throw fail("unexpected character") }
            if first == 0x30 { index += 1 } else { digits() }
            if peek == UInt8(ascii: ".") {
                index += 1
                guard let d = peek, (0x30...0x39).contains(d) else { throw fail("digit expected after '.'") }
                digits()
            }
            if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
                index += 1
                if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { index += 1 }
                guard let d = peek, (0x30...0x39).contains(d) else { throw fail("digit expected in exponent") }
                digits()
            }
        }

        mutating func digits() {
            while let c = peek, (0x30...0x39).contains(c) { index += 1 }
        }
    }
}
