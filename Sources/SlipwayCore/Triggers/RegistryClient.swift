import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// Asks registries (HTTP API v2) for the current digest of an image reference: the top-level
/// manifest digest (an index or manifest list when there is one), with Basic or Bearer-token auth
/// from `registries`. Plain HTTP only for loopback registries or those marked `insecure`.
public struct RegistryClient: Sendable {
    let registries: [SlipwayConfig.RegistryCredential]
    let http: HTTPClient

    public init(registries: [SlipwayConfig.RegistryCredential], http: HTTPClient = .shared) {
        self.registries = registries
        self.http = http
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        /// The registry could not be reached at all (as opposed to answering no).
        public var unreachable: Bool
    }

    static let accept = [
        "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json",
    ].joined(separator: ", ")

    /// A reference split the way the registry API wants it.
    public struct Reference: Sendable, Equatable {
        public var host: String
        public var repository: String
        public var reference: String

        public init?(_ image: String) {
            var rest = image
            var reference = "latest"
            if let at = rest.range(of: "@") {
                reference = String(rest[at.upperBound...])
                rest = String(rest[..<at.lowerBound])
            } else if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
                reference = String(rest[rest.index(after: colon)...])
                rest = String(rest[..<colon])
            }
            let host = DockerfileScan.registryHost(of: image)
            var repository = host == "docker.io" && !rest.hasPrefix("docker.io/") ? rest : String(rest.dropFirst(host.count + 1))
            if host == "docker.io", !repository.contains("/") { repository = "library/" + repository }
            guard !repository.isEmpty, !reference.isEmpty else { return nil }
            self.host = host
            self.repository = repository
            self.reference = reference
        }

        /// Pinned by digest: it cannot change.
        public var isDigest: Bool { reference.hasPrefix("sha256:") }
    }

    func base(for host: String) -> String {
        let hostOnly = host.split(separator: ":").first.map(String.init) ?? host
        let loopback = hostOnly == "localhost" || hostOnly.hasPrefix("127.") || host.hasPrefix("[::1]")
        let insecure = registries.contains { DockerfileScan.serverHost($0.server) == host && $0.insecure }
        let apiHost = host == "docker.io" ? "registry-1.docker.io" : host
        return (loopback || insecure ? "http://" : "https://") + apiHost
    }

    func credential(for host: String) -> (user: String, password: String)? {
        guard let registry = registries.first(where: { DockerfileScan.serverHost($0.server) == host }),
            let password = try? FileText.readSecret(registry.passwordFile)
        else { return nil }
        return (registry.username, String(decoding: password, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Registries that could not be reached, and until when they are not asked again: a host
    /// with no route (Docker Hub from an offline build host) must not cost every build a timeout.
    static let unreachableUntil = Mutex<[String: ContinuousClock.Instant]>([:])
    static let retryUnreachableAfter: Duration = .seconds(300)

    /// The digest the registry serves now for `image`.
    public func digest(of image: String) async throws(Failure) -> String {
        guard let ref = Reference(image) else { throw Failure(description: "'\(image)' is no image reference", unreachable: false) }
        if let until = Self.unreachableUntil.withLock({ $0[ref.host] }), ContinuousClock.now < until {
            throw Failure(description: "\(ref.host) was unreachable moments ago; asked again after a while", unreachable: true)
        }
        do {
            let digest = try await fetchDigest(ref)
            _ = Self.unreachableUntil.withLock { $0.removeValue(forKey: ref.host) }
            return digest
        } catch {
            if error.unreachable { Self.unreachableUntil.withLock { $0[ref.host] = .now + Self.retryUnreachableAfter } }
            throw error
        }
    }

    func fetchDigest(_ ref: Reference) async throws(Failure) -> String {
        let url = "\(base(for: ref.host))/v2/\(ref.repository)/manifests/\(ref.reference)"
        var response = try await send(url, authorization: nil)
        if response.status == .unauthorized {
            let challenge = response.headers.first(name: "WWW-Authenticate") ?? ""
            let authorization = try await authorize(challenge: challenge, host: ref.host, repository: ref.repository)
            response = try await send(url, authorization: authorization)
        }
        guard response.status == .ok else {
            throw Failure(description: "\(url) answered \(response.status.code) \(response.status.reasonPhrase)", unreachable: false)
        }
        if let digest = response.headers.first(name: "Docker-Content-Digest"), digest.hasPrefix("sha256:") { return digest }
        throw Failure(description: "\(url) sent no Docker-Content-Digest", unreachable: false)
    }

    func send(_ url: String, authorization: String?) async throws(Failure) -> HTTPClientResponse {
        var request = HTTPClientRequest(url: url)
        request.method = .HEAD
        request.headers.add(name: "Accept", value: Self.accept)
        request.headers.add(name: "User-Agent", value: "slipway/\(SlipwayVersion.current)")
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        do {
            return try await http.execute(request, timeout: .seconds(10))
        } catch {
            throw Failure(description: "cannot reach \(url): \(error)", unreachable: true)
        }
    }

    /// `Basic realm=…` → our credentials; `Bearer realm=…,service=…,scope=…` → a token from the realm.
    func authorize(challenge: String, host: String, repository: String) async throws(Failure) -> String {
        let credential = credential(for: host)
        let basic = credential.map { "Basic " + Data("\($0.user):\($0.password)".utf8).base64EncodedString() }
        if challenge.lowercased().hasPrefix("basic") {
            guard let basic else { throw Failure(description: "\(host) asks for credentials and registries has none for it", unreachable: false) }
            return basic
        }
        guard challenge.lowercased().hasPrefix("bearer") else {
            throw Failure(description: "\(host) asks for an unknown authentication: \(challenge)", unreachable: false)
        }
        let parameters = Self.parameters(String(challenge.dropFirst(6)))
        guard let realm = parameters["realm"], var components = URLComponents(string: realm) else {
            throw Failure(description: "\(host) sent a Bearer challenge without a realm", unreachable: false)
        }
        var query = components.queryItems ?? []
        if let service = parameters["service"] { query.append(URLQueryItem(name: "service", value: service)) }
        query.append(URLQueryItem(name: "scope", value: parameters["scope"] ?? "repository:\(repository):pull"))
        components.queryItems = query
        guard let tokenURL = components.string else { throw Failure(description: "bad token realm \(realm)", unreachable: false) }
        var request = HTTPClientRequest(url: tokenURL)
        if let basic { request.headers.add(name: "Authorization", value: basic) }
        do {
            let response = try await http.execute(request, timeout: .seconds(30))
            let body = try await response.body.collect(upTo: 1 << 20)
            guard response.status == .ok,
                let object = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
                let token = (object["token"] as? String) ?? (object["access_token"] as? String)
            else { throw Failure(description: "\(realm) gave no token (\(response.status.code))", unreachable: false) }
            return "Bearer " + token
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure(description: "cannot get a token from \(realm): \(error)", unreachable: true)
        }
    }

    /// `realm="https://auth",service="registry",scope="repository:x:pull"` → its pairs.
    static func parameters(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        while let eq = rest.firstIndex(of: "=") {
            let key = rest[..<eq].trimmingCharacters(in: CharacterSet(charactersIn: " ,"))
            rest = rest[rest.index(after: eq)...]
            var value: Substring
            if rest.first == "\"", let close = rest.dropFirst().firstIndex(of: "\"") {
                value = rest[rest.index(after: rest.startIndex)..<close]
                rest = rest[rest.index(after: close)...]
            } else {
                let end = rest.firstIndex(of: ",") ?? rest.endIndex
                value = rest[..<end]
                rest = rest[end...]
            }
            out[key.lowercased()] = String(value)
            rest = rest.drop { $0 == "," || $0 == " " }
        }
        return out
    }
}

/// The version `User-Agent` headers name.
public enum SlipwayVersion {
    public static let current = "0.2.0"
}
