import NIOCore
import NIOSSL
import SlipwayCore
import Synchronization

/// The webhook listener's certificate and key, swapped by a reload for new connections.
///
/// Every handshake asks for the current pair (NIOSSL's context callback), so a renewed
/// certificate is served without a restart; connections already open keep theirs.
public final class TLSCertificates: Sendable {
    struct Pair: Sendable {
        var chain: [NIOSSLCertificate]
        var key: NIOSSLPrivateKey
    }

    private let current: Mutex<Pair>

    /// A pair that cannot be used, said so the operator knows which file to fix.
    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    /// Reads and checks the pair (readable, PEM, the key belongs to the certificate).
    public init(files: SlipwayConfig.TLSFiles) throws(Invalid) {
        current = Mutex(try Self.load(files))
    }

    /// Re-reads the files; on any problem the old pair stays in use and the error is thrown.
    public func reload(_ files: SlipwayConfig.TLSFiles) throws(Invalid) {
        let pair = try Self.load(files)
        current.withLock { $0 = pair }
    }

    static func load(_ files: SlipwayConfig.TLSFiles) throws(Invalid) -> Pair {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(files.certificate)
        } catch {
            throw Invalid(description: "tls.cert_file \(files.certificate) cannot be read as a PEM certificate: \(error)")
        }
        guard !chain.isEmpty else { throw Invalid(description: "tls.cert_file \(files.certificate) holds no certificate") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: files.key, format: .pem)
        } catch {
            throw Invalid(description: "tls.key_file \(files.key) cannot be read as a PEM private key: \(error)")
        }
        // A context built from the pair makes OpenSSL check that the key belongs to the certificate.
        do {
            _ = try NIOSSLContext(configuration: .makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key)))
        } catch {
            throw Invalid(
                description: "tls.key_file \(files.key) does not belong to the certificate in tls.cert_file \(files.certificate): \(error)")
        }
        return Pair(chain: chain, key: key)
    }

    /// The server configuration: TLS 1.2 or later, the current pair for every handshake.
    public var configuration: TLSConfiguration {
        let pair = current.withLock { $0 }
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: pair.chain.map { .certificate($0) }, privateKey: .privateKey(pair.key))
        tls.minimumTLSVersion = .tlsv12
        tls.sslContextCallback = { [self] _, promise in
            let pair = current.withLock { $0 }
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = pair.chain.map { .certificate($0) }
            override.privateKey = .privateKey(pair.key)
            promise.succeed(override)
        }
        return tls
    }
}
