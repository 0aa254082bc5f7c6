import CLibCrypto
import Foundation

/// The JWT a GitHub App signs to ask for an installation token: RS256 over
/// `{"iat": now-60, "exp": now+540, "iss": APP_ID}` with the app's private key (OpenSSL).
public enum AppJWT {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public static func make(appID: Int, privateKeyPEM: [UInt8], now: Int64 = Int64(Date().timeIntervalSince1970)) throws(Failure) -> String {
        let header = base64URL(Array(#"{"alg":"RS256","typ":"JWT"}"#.utf8))
        // iat 60 s in the past (clock drift), exp under GitHub's 10-minute limit.
        let claims = base64URL(Array(#"{"iat":\#(now - 60),"exp":\#(now + 540),"iss":"\#(appID)"}"#.utf8))
        let input = Array("\(header).\(claims)".utf8)
        let signature = try sign(input, pem: privateKeyPEM)
        return "\(header).\(claims).\(base64URL(signature))"
    }

    static func sign(_ message: [UInt8], pem: [UInt8]) throws(Failure) -> [UInt8] {
        let bio = pem.withUnsafeBytes { BIO_new_mem_buf($0.baseAddress, Int32($0.count)) }
        guard let bio else { throw Failure(description: "cannot read the app's private key") }
        defer { BIO_free(bio) }
        guard let key = PEM_read_bio_PrivateKey(bio, nil, nil, nil) else {
            throw Failure(description: "github.app.private_key_file is not a PEM private key")
        }
        defer { EVP_PKEY_free(key) }
        guard let context = EVP_MD_CTX_new() else { throw Failure(description: "OpenSSL cannot allocate a digest context") }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestSignInit(context, nil, EVP_sha256(), nil, key) == 1 else {
            throw Failure(description: "the app's private key cannot sign RS256")
        }
        var length = 0
        guard message.withUnsafeBytes({ EVP_DigestSign(context, nil, &length, $0.baseAddress, $0.count) }) == 1 else {
            throw Failure(description: "RS256 signing failed")
        }
        var signature = [UInt8](repeating: 0, count: length)
        let ok = message.withUnsafeBytes { input in
            signature.withUnsafeMutableBufferPointer { EVP_DigestSign(context, $0.baseAddress, &length, input.baseAddress, input.count) }
        }
        guard ok == 1 else { throw Failure(description: "RS256 signing failed") }
        return Array(signature.prefix(length))
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
