import Hummingbird
import Logging
import NIOCore
import SlipwayCore

#if canImport(Glibc)
    import Glibc
#endif

/// The admin API on a unix socket: mode 0660, group `slipway` when that group exists.
public enum AdminServer {
    public struct SetupError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Prepares the socket's directory and removes a stale socket left by a crash.
    public static func prepare(socketPath: String) throws {
        let directory = FileText.directory(of: socketPath)
        do {
            try FileText.makeDirectories(directory, mode: 0o750)
        } catch {
            throw SetupError(description: "cannot create the admin socket directory: \(error)")
        }
        var st = stat()
        guard stat(directory, &st) == 0 else { throw SetupError(description: "cannot stat \(directory)") }
        if st.st_mode & S_IWOTH != 0 {
            throw SetupError(
                description:
                    "admin socket directory \(directory) is world-writable: anyone could replace the socket; use a directory like /run/slipway"
            )
        }
        if lstat(socketPath, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFSOCK else { throw SetupError(description: "\(socketPath) exists and is not a socket") }
            unlink(socketPath)
        }
    }

    /// Restricts the bound socket: owner and group may connect, others may not.
    public static func restrict(socketPath: String, logger: Logger) {
        if let group = getgrnam("slipway"), getegid() != group.pointee.gr_gid {
            // Under systemd (Group=slipway) the socket is created with the group already; root needs the chown.
            if chown(socketPath, getuid(), group.pointee.gr_gid) != 0 {
                logger.warning("cannot give the admin socket to group slipway", metadata: ["error": "\(String(cString: strerror(errno)))"])
            }
        }
        chmod(socketPath, 0o660)
    }

    public static func application(controller: AdminController, socketPath: String, logger: Logger) -> some ApplicationProtocol {
        let router = Router(context: SlipwayRequestContext.self)
        controller.addRoutes(to: router)
        return Application(
            router: router,
            configuration: .init(address: .unixDomainSocket(path: socketPath), serverName: nil),
            onServerRunning: { _ in
                restrict(socketPath: socketPath, logger: logger)
                logger.info("admin API listening", metadata: ["socket": "\(socketPath)"])
            },
            logger: logger)
    }
}
