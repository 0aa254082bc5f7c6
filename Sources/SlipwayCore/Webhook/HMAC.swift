import CLibCrypto

/// HMAC over raw bytes with OpenSSL's libcrypto, and a constant-time compare.
public enum HMAC {
    /// The digest algorithms GitHub signs with.
    public enum Algorithm: String, Sendable {
        case sha256
        case sha1

        var digestLength: Int { self == .sha256 ? 32 : 20 }
    }

    /// Computes HMAC(`key`, `message`) with `algorithm`.
    public static func digest(_ algorithm: Algorithm, key: [UInt8], message: UnsafeRawBufferPointer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let md = algorithm == .sha256 ? EVP_sha256() : EVP_sha1()
        let ok = key.withUnsafeBytes { keyBytes in
            out.withUnsafeMutableBufferPointer { outBuffer in
                CLibCrypto.HMAC(
                    md, keyBytes.baseAddress, Int32(keyBytes.count),
                    message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count,
                    outBuffer.baseAddress, &length)
            }
        }
        // HMAC only fails on allocation failure or a missing digest: neither is recoverable input.
        precondition(ok != nil, "OpenSSL HMAC failed")
        return Array(out.prefix(Int(length)))
    }

    /// Computes HMAC over a byte array.
    public static func digest(_ algorithm: Algorithm, key: [UInt8], message: [UInt8]) -> [UInt8] {
        message.withUnsafeBytes { digest(algorithm, key: key, message: $0) }
    }

    /// Compares two byte strings in time that depends only on their length (`CRYPTO_memcmp`).
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in CRYPTO_memcmp(pa.baseAddress, pb.baseAddress, a.count) == 0 }
        }
    }
}

extension Array where Element == UInt8 {
    /// Lower-case hex, as GitHub writes digests.
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var chars = [UInt8]()
        chars.reserveCapacity(count * 2)
        for byte in self {
            chars.append(digits[Int(byte >> 4)])
            chars.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: chars, as: UTF8.self)
    }

    /// Decodes hex (either case); nil when the text is not hex of even length.
    public init?(hexString: some StringProtocol) {
        let utf8 = Array(hexString.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var bytes = [UInt8]()
        bytes.reserveCapacity(utf8.count / 2)
        var i = 0
        while i < utf8.count {
            guard let hi = value(utf8[i]), let lo = value(utf8[i + 1]) else { return nil }
            bytes.append(hi << 4 | lo)
            i += 2
        }
        self = bytes
    }
}
