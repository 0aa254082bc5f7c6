/// The pipeline's tables: runs, their appended states, match traces. The event log knows none of them.
public enum PipelineSchema {
    static let statuses = RunStatus.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
    static let phases = RunPhase.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
    static let kinds = RunKind.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
    static let steps = RunStep.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
    static let triggers = RunTrigger.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")

    static let migrations: [Migration] = [
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
        // The enums of RunStateMachine become CHECKs, and each state row says which stage holds
        // the run (`phase`) and what kind of work it is (`kind`, instead of a reason prefix).
        // SQLite adds CHECKs only by rebuilding the tables; every row is copied as it was.
        Migration(
            version: 4, name: "typed run states",
            sql: """
                DROP TRIGGER runs_no_update; DROP TRIGGER runs_no_delete;
                DROP TRIGGER run_states_no_update; DROP TRIGGER run_states_no_delete;
                CREATE TABLE runs_v4 (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    run_id TEXT NOT NULL UNIQUE,
                    task TEXT NOT NULL,
                    trigger TEXT NOT NULL CHECK (trigger IN (\(triggers))),
                    event_seq INTEGER REFERENCES events (seq),
                    attempt INTEGER NOT NULL DEFAULT 1,
                    repo_url TEXT NOT NULL,
                    branch TEXT NOT NULL,
                    commit_sha TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    engine TEXT NOT NULL DEFAULT '',
                    requested_by TEXT NOT NULL DEFAULT '',
                    tag TEXT NOT NULL DEFAULT '',
                    pr INTEGER,
                    from_fork INTEGER NOT NULL DEFAULT 0
                );
                INSERT INTO runs_v4 (id, run_id, task, trigger, event_seq, attempt, repo_url, branch, commit_sha, created_at, engine)
                    SELECT id, run_id, task, trigger, event_seq, attempt, repo_url, branch, commit_sha, created_at, 'local' FROM runs;
                CREATE TABLE run_states_v4 (
                    seq INTEGER PRIMARY KEY,
                    run INTEGER NOT NULL REFERENCES runs (id),
                    status TEXT NOT NULL CHECK (status IN (\(statuses))),
                    phase TEXT NOT NULL CHECK (phase IN (\(phases))),
                    kind TEXT NOT NULL DEFAULT 'build' CHECK (kind IN (\(kinds))),
                    step TEXT NOT NULL DEFAULT '' CHECK (step IN (\(steps))),
                    at TEXT NOT NULL,
                    reason TEXT NOT NULL DEFAULT '',
                    exit_code INTEGER,
                    durations TEXT NOT NULL DEFAULT '{}',
                    digests TEXT NOT NULL DEFAULT '{}',
                    engine TEXT NOT NULL DEFAULT ''
                );
                INSERT INTO run_states_v4 (seq, run, status, phase, kind, step, at, reason, exit_code, durations, digests)
                    SELECT seq, run, status,
                        CASE
                            WHEN status = 'Queued' AND step = 'push' AND reason LIKE 'retry-push%' THEN 'push-wait'
                            WHEN status = 'Queued' THEN 'queued'
                            WHEN status = 'Running' AND step = 'push' THEN 'pushing'
                            WHEN status = 'Running' THEN 'building'
                            ELSE 'ended'
                        END,
                        CASE WHEN reason LIKE 'retry-push%' THEN 'push-retry' ELSE 'build' END,
                        step, at, reason, exit_code, durations, digests
                    FROM run_states;
                DROP TABLE run_states;
                DROP TABLE runs;
                ALTER TABLE runs_v4 RENAME TO runs;
                ALTER TABLE run_states_v4 RENAME TO run_states;
                CREATE UNIQUE INDEX runs_once_per_event ON runs (event_seq, task, attempt) WHERE trigger IN ('push', 'tag', 'pull_request');
                CREATE INDEX runs_task ON runs (task, id);
                CREATE INDEX run_states_run ON run_states (run, seq);
                CREATE INDEX run_states_phase ON run_states (phase, run);
                CREATE TRIGGER runs_no_update BEFORE UPDATE ON runs
                    BEGIN SELECT RAISE(ABORT, 'runs are append-only'); END;
                CREATE TRIGGER runs_no_delete BEFORE DELETE ON runs
                    BEGIN SELECT RAISE(ABORT, 'runs are append-only'); END;
                CREATE TRIGGER run_states_no_update BEFORE UPDATE ON run_states
                    BEGIN SELECT RAISE(ABORT, 'run states are append-only'); END;
                CREATE TRIGGER run_states_no_delete BEFORE DELETE ON run_states
                    BEGIN SELECT RAISE(ABORT, 'run states are append-only'); END;
                """),
    ]
}
