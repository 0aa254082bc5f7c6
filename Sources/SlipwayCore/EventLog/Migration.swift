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
        Migration(
            version: 2, name: "runs",
            sql: """
                CREATE TABLE runs (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    run_id TEXT NOT NULL UNIQUE,
                    task TEXT NOT NULL,
                    trigger TEXT NOT NULL,
                    event_seq INTEGER REFERENCES events (seq),
                    attempt INTEGER NOT NULL DEFAULT 1,
                    repo_url TEXT NOT NULL,
                    branch TEXT NOT NULL,
                    commit_sha TEXT NOT NULL,
                    created_at TEXT NOT NULL
                );
                CREATE UNIQUE INDEX runs_once_per_event ON runs (event_seq, task, attempt) WHERE trigger = 'push';
                CREATE INDEX runs_task ON runs (task, id);
                CREATE TABLE run_states (
                    seq INTEGER PRIMARY KEY,
                    run INTEGER NOT NULL REFERENCES runs (id),
                    status TEXT NOT NULL,
                    at TEXT NOT NULL,
                    reason TEXT NOT NULL DEFAULT '',
                    step TEXT NOT NULL DEFAULT '',
                    exit_code INTEGER,
                    durations TEXT NOT NULL DEFAULT '{}',
                    digests TEXT NOT NULL DEFAULT '{}'
                );
                CREATE INDEX run_states_run ON run_states (run, seq);
                CREATE INDEX run_states_status ON run_states (status, run);
                CREATE TRIGGER runs_no_update BEFORE UPDATE ON runs
                    BEGIN SELECT RAISE(ABORT, 'runs are append-only'); END;
                CREATE TRIGGER runs_no_delete BEFORE DELETE ON runs
                    BEGIN SELECT RAISE(ABORT, 'runs are append-only'); END;
                CREATE TRIGGER run_states_no_update BEFORE UPDATE ON run_states
                    BEGIN SELECT RAISE(ABORT, 'run states are append-only'); END;
                CREATE TRIGGER run_states_no_delete BEFORE DELETE ON run_states
                    BEGIN SELECT RAISE(ABORT, 'run states are append-only'); END;
                CREATE TABLE match_traces (
                    event_seq INTEGER NOT NULL REFERENCES events (seq),
                    task TEXT NOT NULL,
                    matched INTEGER NOT NULL,
                    reason TEXT NOT NULL,
                    run_id TEXT,
                    PRIMARY KEY (event_seq, task)
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
