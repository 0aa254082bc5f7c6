import CLibCrypto

/// SHA-256 of raw bytes with OpenSSL's libcrypto (`EVP_Digest`).
public enum SHA256 {
    public static func digest(_ bytes: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let ok = bytes.withUnsafeBytes { input in
            out.withUnsafeMutableBufferPointer { EVP_Digest(input.baseAddress, input.count, $0.baseAddress, &length, EVP_sha256(), nil) }
        }
        // Fails only when OpenSSL cannot allocate: not recoverable input.
        precondition(ok == 1 && length == 32, "OpenSSL SHA-256 failed")
        return out
    }

    /// Lower-case hex of the digest.
    public static func hex(_ bytes: [UInt8]) -> String {
        digest(bytes).map { String($0, radix: 16).leftPadded(2) }.joined()
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
