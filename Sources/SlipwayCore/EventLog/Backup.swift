import CSQLite3
import Dispatch

#if canImport(Glibc)
    import Glibc
#endif

/// Online copies of the whole database (SQLite's backup API) and their verification.
public enum Backup {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Copies the database at `source` into a new file `destination` (mode 0600) while the
    /// daemon keeps writing: the copy is the snapshot of one read transaction (WAL). Runs off the
    /// cooperative pool.
    public static func snapshot(of source: String, to destination: String) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try snapshotBlocking(of: source, to: destination) })
            }
        }
    }

    static func snapshotBlocking(of source: String, to destination: String) throws {
        let fd = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure(description: "cannot create \(destination): \(String(cString: strerror(errno)))") }
        close(fd)
        let from = try SQLiteConnection(path: source, readOnly: true)
        let to = try SQLiteConnection(path: destination)
        guard let backup = sqlite3_backup_init(to.handle, "main", from.handle, "main") else {
            throw Failure(description: "cannot start the backup: \(String(cString: sqlite3_errmsg(to.handle)))")
        }
        // One step: the whole copy from one read transaction, so it is consistent.
        let rc = sqlite3_backup_step(backup, -1)
        let finish = sqlite3_backup_finish(backup)
        guard rc == SQLITE_DONE, finish == SQLITE_OK else {
            throw Failure(description: "backup failed: \(String(cString: sqlite3_errstr(rc == SQLITE_DONE ? finish : rc)))")
        }
        // A single file to hand out: no WAL beside it.
        try to.execute("PRAGMA journal_mode=DELETE")
    }

    /// What `slipway backup --verify` reports.
    public struct Report: Sendable {
        public var integrity: String
        public var events: Int64
        public var runs: Int64
        public var schemaVersion: Int64
        public var sound: Bool { integrity == "ok" }
    }

    /// Opens `path` read-only and checks it: `PRAGMA integrity_check`, event and run counts.
    public static func verify(_ path: String) throws -> Report {
        guard access(path, R_OK) == 0 else { throw Failure(description: "cannot read \(path): \(String(cString: strerror(errno)))") }
        let db = try SQLiteConnection(path: path, readOnly: true)
        let integrity = try db.prepare("PRAGMA integrity_check").rows { $0.text(0) }.joined(separator: "; ")
        let version = try db.prepare("PRAGMA user_version").rows { $0.int(0) }.first ?? 0
        func count(_ table: String) -> Int64 {
            (try? db.prepare("SELECT COUNT(*) FROM \(table)").rows { $0.int(0) }.first) ?? -1
        }
        return Report(integrity: integrity, events: count("events"), runs: count("runs"), schemaVersion: version)
    }
}
