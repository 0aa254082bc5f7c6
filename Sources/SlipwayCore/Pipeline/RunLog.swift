#if canImport(Glibc)
    import Glibc
#endif
import Logging
import Synchronization

/// A run's log file: every command run (masked) and all its output, each line timestamped.
///
/// Lines also go to the daemon's logger with `run.id`, so `journalctl RUN_ID=sw7` shows the build output too.
public final class RunLog: Sendable {
    public let path: String
    let fd: Int32
    let masker: SecretMasker
    let logger: Logger
    private let lock = Mutex(())

    public init(path: String, masker: SecretMasker, logger: Logger) throws(FileText.Failure) {
        self.path = path
        self.masker = masker
        self.logger = logger
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw FileText.Failure(path: path, reason: String(cString: strerror(errno))) }
    }

    deinit { close(fd) }

    /// Appends one line (masked, timestamped).
    public func line(_ text: String) {
        let masked = masker.mask(text)
        let bytes = Array("\(Timestamp.now().iso8601) \(masked)\n".utf8)
        lock.withLock { _ in _ = UnixIO.writeAll(fd, bytes) }
        logger.info("\(masked)")
    }

    /// Logs the command about to run, as `$ docker build …`.
    public func command(_ command: Command) {
        line("$ \(command.display)")
    }

    public func mask(_ text: String) -> String { masker.mask(text) }
}
