import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// GitHub's REST API with a token (PAT) or a GitHub App installation token, through
/// async-http-client. Every request sends `User-Agent: slipway/<version>` and
/// `Accept: application/vnd.github+json`. Tokens never reach a log.
public final class GitHubClient: Sendable {
    public let settings: SlipwayConfig.GitHubSettings
    let http: HTTPClient
    /// The installation token and when to stop using it (5 minutes before it expires).
    private let cached = Mutex<(token: String, until: Date)?>(nil)

    public init(settings: SlipwayConfig.GitHubSettings, http: HTTPClient = .shared) {
        self.settings = settings
        self.http = http
    }

    public struct Response: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: Data

        public var json: Any? { try? JSONSerialization.jsonObject(with: body) }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        /// GitHub could not be reached (retry later) as opposed to answering.
        public var unreachable: Bool
    }

    /// `owner/name` of a task's repository: the last two path segments of its context URL.
    public static func repository(of url: String) -> String? {
        var path = url
        if let scheme = path.range(of: "://") {
            path = String(path[scheme.upperBound...])
            path = path.split(separator: "/", maxSplits: 1).dropFirst().first.map(String.init) ?? ""
        } else if let colon = path.firstIndex(of: ":") {
            path = String(path[path.index(after: colon)...])
        }
        if path.hasSuffix(".git") { path = String(path.dropLast(4)) }
        let parts = path.split(separator: "/").suffix(2)
        return parts.count == 2 ? parts.joined(separator: "/") : nil
    }

    /// The token requests carry: the PAT, or an installation token exchanged for the app's JWT.
    public func token() async throws(Failure) -> String {
        if let file = settings.tokenFile {
            guard let bytes = try? FileText.readSecret(file) else {
                throw Failure(description: "cannot read github.token_file \(file)", unreachable: false)
            }
            return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let app = settings.app else { throw Failure(description: "github: no token_file and no app", unreachable: false) }
        if let cached = cached.withLock({ $0 }), cached.until > Date() { return cached.token }
        guard let pem = try? FileText.readSecret(app.privateKeyFile) else {
            throw Failure(description: "cannot read github.app.private_key_file \(app.privateKeyFile)", unreachable: false)
        }
        let jwt: String
        do { jwt = try AppJWT.make(appID: app.id, privateKeyPEM: pem) } catch {
            throw Failure(description: error.description, unreachable: false)
        }
        let response = try await send("POST", "/app/installations/\(app.installationID)/access_tokens", body: nil, authorization: "Bearer \(jwt)")
        guard response.status == 201, let object = response.json as? [String: Any], let token = object["token"] as? String else {
            throw Failure(description: "GitHub refused the app's installation token (\(response.status)): \(Self.message(response))", unreachable: false)
        }
        var until = Date().addingTimeInterval(55 * 60)
        if let expires = object["expires_at"] as? String, let date = ISO8601DateFormatter().date(from: expires) {
            until = date.addingTimeInterval(-5 * 60)
        }
        cached.withLock { $0 = (token, until) }
        return token
    }

    /// One API request with the token; `path` starts with `/`.
    public func request(_ method: String, _ path: String, json: Any? = nil) async throws(Failure) -> Response {
        let body = json.flatMap { try? JSONSerialization.data(withJSONObject: $0) }
        return try await send(method, path, body: body, authorization: "Bearer \(try await token())")
    }

    func send(_ method: String, _ path: String, body: Data?, authorization: String) async throws(Failure) -> Response {
        var request = HTTPClientRequest(url: settings.apiURL + path)
        request.method = HTTPMethod(rawValue: method)
        request.headers.add(name: "User-Agent", value: "slipway/\(SlipwayVersion.current)")
        request.headers.add(name: "Accept", value: "application/vnd.github+json")
        request.headers.add(name: "X-GitHub-Api-Version", value: "2022-11-28")
        request.headers.add(name: "Authorization", value: authorization)
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        do {
            let response = try await http.execute(request, timeout: .seconds(30))
            let collected = try await response.body.collect(upTo: 8 << 20)
            var headers: [String: String] = [:]
            for header in response.headers { headers[header.name.lowercased()] = header.value }
            return Response(status: Int(response.status.code), headers: headers, body: Data(collected.readableBytesView))
        } catch {
            throw Failure(description: "cannot reach GitHub at \(settings.apiURL): \(error)", unreachable: true)
        }
    }

    /// GitHub's `message` field, or the status line.
    public static func message(_ response: Response) -> String {
        ((response.json as? [String: Any])?["message"] as? String) ?? "HTTP \(response.status)"
    }

    /// When a 403/429 says to wait: `Retry-After` seconds, else `X-RateLimit-Reset` (epoch seconds).
    public static func retryAt(_ response: Response, now: Date = Date()) -> Date? {
        guard response.status == 403 || response.status == 429 else { return nil }
        if let after = response.headers["retry-after"].flatMap(Double.init) { return now.addingTimeInterval(after) }
        if response.headers["x-ratelimit-remaining"] == "0", let reset = response.headers["x-ratelimit-reset"].flatMap(Double.init) {
            return Date(timeIntervalSince1970: reset)
        }
        return response.status == 429 ? now.addingTimeInterval(60) : nil
    }
}
