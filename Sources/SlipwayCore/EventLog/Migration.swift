/// A numbered schema change. Applied in order, each in its own transaction, tracked by `PRAGMA user_version`.
public struct Migration: Sendable {
    public var version: Int
    public var name: String
    public var sql: String

    /// Every migration Slipway knows, oldest first. Append; never edit a released one.
    public static let all: [Migration] = [
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
    ]

    static func apply(_ migrations: [Migration], to db: SQLiteConnection) throws {
        let current = try db.prepare("PRAGMA user_version").rows { $0.int(0) }.first ?? 0
        for migration in migrations where migration.version > current {
            try db.execute("BEGIN IMMEDIATE")
            do {
                try db.execute(migration.sql)
                try db.execute("PRAGMA user_version = \(migration.version)")
                try db.execute("COMMIT")
            } catch {
                try? db.execute("ROLLBACK")
                throw MigrationError(version: migration.version, name: migration.name, underlying: "\(error)")
            }
        }
    }
}

/// A migration that failed, named so the operator knows which schema step broke.
public struct MigrationError: Error, CustomStringConvertible {
    public var version: Int
    public var name: String
    public var underlying: String
    public var description: String { "migration \(version) (\(name)) failed: \(underlying)" }
}
