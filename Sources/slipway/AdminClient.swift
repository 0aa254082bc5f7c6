import Foundation
import SlipwayCore

#if canImport(Glibc)
    import Glibc
#endif

/// HTTP/1.1 over the admin unix socket: one request per connection, chunked bodies streamed.
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

    func connect() throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Unreachable(socketPath: socketPath, reason: String(cString: strerror(errno)), permissionDenied: false) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            close(fd)
            throw Unreachable(socketPath: socketPath, reason: "path too long for a unix socket", permissionDenied: false)
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc != 0 {
            let code = errno
            close(fd)
            throw Unreachable(
                socketPath: socketPath, reason: String(cString: strerror(code)), permissionDenied: code == EACCES || code == EPERM)
        }
        return fd
    }

    /// Sends a request; `onChunk` receives body bytes as they arrive (for streamed logs).
    @discardableResult
    func request(_ method: String, _ path: String, body: Data? = nil, onChunk: ((Data) -> Void)? = nil) throws -> Response {
        let fd = try connect()
        defer { close(fd) }
        // Who asks is not said here: the daemon reads it from the socket (SO_PEERCRED).
        var head = "\(method) \(path) HTTP/1.1\r\nHost: slipway\r\nConnection: close\r\n"
        if let body {
            head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n"
        } else if method == "POST" {
            head += "Content-Length: 0\r\n"
        }
        head += "\r\n"
        try send(fd, Data(head.utf8) + (body ?? Data()))
        var reader = Reader(fd: fd)
        let statusLine = try reader.line()
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else {
            throw Refused(status: 0, message: "bad answer from the daemon: \(statusLine)")
        }
        var headers: [String: String] = [:]
        while true {
            let line = try reader.line()
            if line.isEmpty { break }
            if let colon = line.firstIndex(of: ":") {
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        var collected = Data()
        let deliver: (Data) -> Void = { chunk in
            if let onChunk, status < 300 { onChunk(chunk) } else { collected.append(chunk) }
        }
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            while true {
                let sizeLine = try reader.line()
                guard let size = Int(sizeLine.split(separator: ";").first ?? "", radix: 16) else { break }
                if size == 0 { break }
                deliver(try reader.bytes(size))
                _ = try reader.line()
            }
        } else if let length = headers["content-length"].flatMap({ Int($0) }) {
            deliver(try reader.bytes(length))
        } else {
            deliver(reader.rest())
        }
        if status >= 300 {
            let message =
                (try? AdminAPI.decoder.decode(AdminAPI.Problem.self, from: collected))?.error ?? String(decoding: collected, as: UTF8.self)
            throw Refused(status: status, message: message)
        }
        return Response(status: status, body: collected)
    }

    func get<T: Decodable>(_ path: String, as type: T.Type) throws -> T {
        try AdminAPI.decoder.decode(T.self, from: request("GET", path).body)
    }

    func delete<T: Decodable>(_ path: String, as type: T.Type) throws -> T {
        try AdminAPI.decoder.decode(T.self, from: request("DELETE", path).body)
    }

    func post<T: Decodable>(_ path: String, body: some Encodable, as type: T.Type) throws -> T {
        try AdminAPI.decoder.decode(T.self, from: request("POST", path, body: AdminAPI.encoder.encode(body)).body)
    }

    private func send(_ fd: Int32, _ data: Data) throws {
        var offset = 0
        while offset < data.count {
            let n = data.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, data.count - offset, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else {
                throw Unreachable(socketPath: socketPath, reason: String(cString: strerror(errno)), permissionDenied: false)
            }
            offset += n
        }
    }

    /// Buffered reads from the socket.
    struct Reader {
        let fd: Int32
        var buffer = Data()
        var eof = false

        init(fd: Int32) { self.fd = fd }

        mutating func fill() throws {
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { eof = true; return }
            buffer.append(contentsOf: chunk[0..<n])
        }

        mutating func line() throws -> String {
            while buffer.firstIndex(of: 0x0a) == nil {
                if eof { throw Refused(status: 0, message: "the daemon closed the connection early") }
                try fill()
            }
            let end = buffer.firstIndex(of: 0x0a)!
            var line = Data(buffer[buffer.startIndex..<end])
            if line.last == 0x0d { line.removeLast() }
            buffer = Data(buffer[(end + 1)...])
            return String(decoding: line, as: UTF8.self)
        }

        mutating func bytes(_ count: Int) throws -> Data {
            while buffer.count < count {
                if eof { throw Refused(status: 0, message: "the daemon closed the connection early") }
                try fill()
            }
            let out = Data(buffer.prefix(count))
            buffer = Data(buffer.dropFirst(count))
            return out
        }

        mutating func rest() -> Data {
            while !eof { try? fill() }
            defer { buffer = Data() }
            return buffer
        }
    }
}
