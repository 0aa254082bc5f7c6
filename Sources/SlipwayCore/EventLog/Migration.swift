/// A numbered schema change. Applied in order, each in its own transaction, tracked by `PRAGMA user_version`.
public struct Migration: Sendable {
    public var version: Int
    public var name: String
    public var sql: String
    /// Work SQL cannot do (hashing old rows), in the same transaction.
    public var fill: (@Sendable (SQLiteConnection) throws -> Void)?

    public init(version: Int, name: String, sql: String, fill: (@Sendable (SQLiteConnection) throws -> Void)? = nil) {
        self.version = version
        self.name = name
        self.sql = sql
        self.fill = fill
    }

    /// Every migration Slipway knows, oldest first: the event log's and the pipeline's
    /// (`PipelineSchema`), one numbered sequence. Append; never edit a released one.
    public static let all: [Migration] = (eventLog + PipelineSchema.migrations + TriggerSchema.migrations + GitHubSchema.migrations).sorted { $0.version < $1.version }

    /// The event log's own tables.
    static let eventLog: [Migration] = [
        Migration(
            version: 1, name: "events",
            sql: """
                CREATE TABLE events (
                    seq INTEGER PRIMARY KEY,
                    received_at TEXT NOT NULL,
                    delivery_id TEXT NOT NULL,
                    hook_id TEXT NOT NULL DEFAULT '',
                    event_type TEXT NOT NULL,
                    signature TEXT NOT NULL,
                    headers TEXT NOT NULL,
                    body BLOB NOT NULL
                );
                CREATE UNIQUE INDEX events_delivery ON events (hook_id, delivery_id);
                CREATE TRIGGER events_no_update BEFORE UPDATE ON events
                    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
                CREATE TRIGGER events_no_delete BEFORE DELETE ON events
                    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
                CREATE TABLE cursors (
                    name TEXT PRIMARY KEY,
                    seq INTEGER NOT NULL,
                    updated_at TEXT NOT NULL
                );
                CREATE TABLE health (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    checked_at TEXT NOT NULL
                );
                """),
        Migration(
            version: 3, name: "events: media type and body digests",
            sql: """
                ALTER TABLE events ADD COLUMN media_type TEXT NOT NULL DEFAULT ''
                    CHECK (media_type IN ('', 'application/json', 'application/x-www-form-urlencoded', 'internal'));
                CREATE TABLE event_bodies (
                    sha256 BLOB PRIMARY KEY,
                    seq INTEGER NOT NULL REFERENCES events (seq)
                ) WITHOUT ROWID;
                CREATE TRIGGER event_bodies_no_update BEFORE UPDATE ON event_bodies
                    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
                CREATE TRIGGER event_bodies_no_delete BEFORE DELETE ON event_bodies
                    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
                """,
            // Events stored before this release get their digests too: a body already in the log
            // is a duplicate whenever it was received (SECURITY.md, replay under a new delivery id).
            fill: { db in
                let rows = try db.prepare("SELECT seq, body FROM events ORDER BY seq").rows { ($0.int(0), $0.blob(1)) }
                let insert = try db.prepare("INSERT OR IGNORE INTO event_bodies (sha256, seq) VALUES (?, ?)")
                for (seq, body) in rows {
                    try insert.bind([.blob(SHA256.digest(body)), .integer(seq)]).run()
                }
            }),
    ]

    static func apply(_ migrations: [Migration], to db: SQLiteConnection) throws {
        let current = try db.prepare("PRAGMA user_version").rows { $0.int(0) }.first ?? 0
        guard migrations.contains(where: { $0.version > current }) else { return }
        // Rebuilding a table (to add CHECKs) drops the old one, which foreign keys would refuse.
        try db.execute("PRAGMA foreign_keys=OFF")
        defer { try? db.execute("PRAGMA foreign_keys=ON") }
        // All pending migrations in one transaction: a reader never sees a half-upgraded schema
        // (a new data_dir goes from nothing to the latest tables in one commit), and a failure
        // leaves the database exactly as it was.
        try db.execute("BEGIN IMMEDIATE")
        for migration in migrations where migration.version > current {
            do {
                try db.execute(migration.sql)
                try migration.fill?(db)
                try db.execute("PRAGMA user_version = \(migration.version)")
            } catch {
                try? db.execute("ROLLBACK")
                throw MigrationError(version: migration.version, name: migration.name, underlying: "\(error)")
            }
        }
        try db.execute("COMMIT")
    }
}

/// A migration that failed, named so the operator knows which schema step broke.
public struct MigrationError: Error, CustomStringConvertible {
    public var version: Int
    public var name: String
    public var underlying: String
    public var description: String { "migration \(version) (\(name)) failed: \(underlying)" }
}
