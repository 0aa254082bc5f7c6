import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SlipwayCore

#if canImport(Glibc)
    import Glibc
#endif

/// The admin API over its unix socket, spoken by async-http-client (`http+unix://`); bodies stream.
struct AdminClient {
    let socketPath: String

    /// The daemon is not reachable: exit code 3, with the socket path and what to check.
    struct Unreachable: Error, CustomStringConvertible {
        var socketPath: String
        var reason: String
        var permissionDenied: Bool
        var description: String {
            if permissionDenied {
                return "cannot connect to the slipway daemon at \(socketPath): permission denied. "
                    + "The admin socket is for root and members of the 'slipway' group: run with sudo, or `sudo usermod -aG slipway $USER` and log in again."
            }
            return "cannot connect to the slipway daemon at \(socketPath): \(reason). Is it running? Check `systemctl status slipway` "
                + "(or pass --socket / set SLIPWAY_SOCKET)."
        }
    }

    /// An answer the daemon gave with an error status.
    struct Refused: Error, CustomStringConvertible {
        var status: Int
        var message: String
        var description: String { message }
    }

    struct Response {
        var status: Int
        var body: Data
    }

    /// One client per CLI process: a connection attempt that fails is reported at once, not retried.
    private static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(5)
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    /// Sends a request; `onChunk` receives body bytes as they arrive (streamed logs, backups).
    @discardableResult
    func request(_ method: String, _ path: String, body: Data? = nil, onChunk: ((Data) throws -> Void)? = nil) async throws -> Response {
        guard let url = URL(httpURLWithSocketPath: socketPath, uri: path) else {
            throw Unreachable(socketPath: socketPath, reason: "not a usable socket path", permissionDenied: false)
        }
        // Who asks is not said here: the daemon reads it from the socket (SO_PEERCRED).
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = .RAW(value: method)
        request.headers.add(name: "Host", value: "slipway")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        } else if method == "POST" {
            request.body = .bytes(ByteBuffer())
        }
        let response: HTTPClientResponse
        do {
            // Streams (logs --follow, backups) last as long as they last; the connect timeout bounds the wait for the daemon.
            response = try await Self.http.execute(request, deadline: .distantFuture)
        } catch {
            throw unreachable(error)
        }
        let status = Int(response.status.code)
        var collected = Data()
        do {
            for try await buffer in response.body {
                let chunk = Data(buffer.readableBytesView)
                if let onChunk, status < 300 { try onChunk(chunk) } else { collected.append(chunk) }
            }
        } catch let error as Refused {
            throw error
        } catch let error as HTTPClientError {
            throw Refused(status: 0, message: "the daemon closed the connection early (\(error))")
        }
        if status >= 300 {
            let message =
                (try? AdminAPI.decoder.decode(AdminAPI.Problem.self, from: collected))?.error ?? String(decoding: collected, as: UTF8.self)
            throw Refused(status: status, message: message)
        }
        return Response(status: status, body: collected)
    }

    /// Connection failures as the operator should read them: no socket, refused, permission denied.
    private func unreachable(_ error: any Error) -> any Error {
        if let io = error as? IOError {
            let code = io.errnoCode
            return Unreachable(
                socketPath: socketPath, reason: String(cString: strerror(code)), permissionDenied: code == EACCES || code == EPERM)
        }
        if let client = error as? HTTPClientError, client == .connectTimeout {
            return Unreachable(socketPath: socketPath, reason: "no answer within 5 s", permissionDenied: false)
        }
        if error is HTTPClientError { return Refused(status: 0, message: "bad answer from the daemon: \(error)") }
        return Unreachable(socketPath: socketPath, reason: "\(error)", permissionDenied: false)
    }

    func get<T: Decodable>(_ path: String, as type: T.Type) async throws -> T {
        try AdminAPI.decoder.decode(T.self, from: await request("GET", path).body)
    }

    func delete<T: Decodable>(_ path: String, as type: T.Type) async throws -> T {
        try AdminAPI.decoder.decode(T.self, from: await request("DELETE", path).body)
    }

    func post<T: Decodable>(_ path: String, body: some Encodable, as type: T.Type) async throws -> T {
        try AdminAPI.decoder.decode(T.self, from: await request("POST", path, body: AdminAPI.encoder.encode(body)).body)
    }
}
