import ArgumentParser
import Foundation
import SlipwayCore

#if canImport(Glibc)
    import Glibc
#endif

/// `slipway backup FILE` (online, through the daemon) and `slipway backup --verify FILE` (offline).
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Write a consistent copy of the database (events, runs) to FILE, or verify one.",
        discussion: """
            The daemon takes the copy with SQLite's online backup while it keeps accepting webhooks;
            FILE is written with mode 0600. --verify works without the daemon: integrity check, event
            and run counts; exit 0 when sound, 1 when not. Restore: stop slipway, copy FILE to
            <data_dir>/slipway.sqlite (remove slipway.sqlite-wal and -shm), start slipway.
            """)
    @OptionGroup var client: ClientOptions
    @Argument(help: "The backup file.") var file: String
    @Flag(help: "Check FILE instead of writing it.") var verify = false

    func run() async throws {
        if verify { return try check() }
        try await withDaemon {
            let partial = file + ".partial"
            unlink(partial)
            let fd = open(partial, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                FileHandleOutput.stderr("error: cannot create \(partial): \(String(cString: strerror(errno)))")
                throw ExitCode(1)
            }
            var failed: String?
            var written = 0
            do {
                try await client.client.request("GET", "/v1/backup") { chunk in
                    guard failed == nil else { return }
                    if !chunk.withUnsafeBytes({ UnixIO.writeAll(fd, $0) }) {
                        failed = String(cString: strerror(errno))
                    }
                    written += chunk.count
                }
            } catch {
                close(fd)
                unlink(partial)
                throw error
            }
            fsync(fd)
            close(fd)
            if let failed {
                unlink(partial)
                FileHandleOutput.stderr("error: cannot write \(file): \(failed)")
                throw ExitCode(1)
            }
            guard rename(partial, file) == 0 else {
                FileHandleOutput.stderr("error: cannot rename \(partial) to \(file): \(String(cString: strerror(errno)))")
                throw ExitCode(1)
            }
            let report = try Backup.verify(file)
            FileHandleOutput.stdout("wrote \(file) (\(written) bytes): \(report.events) events, \(report.runs) runs")
        }
    }

    func check() throws {
        do {
            let report = try Backup.verify(file)
            FileHandleOutput.stdout(
                "\(file): integrity \(report.integrity), \(report.events) events, \(report.runs) runs, schema version \(report.schemaVersion)")
            if !report.sound || report.events < 0 { throw ExitCode(1) }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            FileHandleOutput.stderr("error: \(file) is not a sound backup: \(error)")
            throw ExitCode(1)
        }
    }
}
