package store

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations brings a database from schema version i (PRAGMA user_version)
// to i+1 with migrations[i]. Append only: a released migration is never
// edited, since databases in the field already ran it (testdata/v1.db
// guards version 1).
var migrations = []string{
	// 1: the initial schema. Times are Unix nanoseconds (NULL: not yet).
	`
CREATE TABLE triggers (
	source  TEXT    NOT NULL,
	key     TEXT    NOT NULL,
	created INTEGER NOT NULL,
	PRIMARY KEY (source, key)
) STRICT, WITHOUT ROWID;

CREATE TABLE runs (
	id         TEXT    PRIMARY KEY,
	playbook   TEXT    NOT NULL,
	version    TEXT    NOT NULL DEFAULT '',
	source     TEXT    NOT NULL,
	key        TEXT    NOT NULL DEFAULT '',
	pos        INTEGER NOT NULL DEFAULT 0, -- index among its trigger's runs
	params     TEXT,
	status     TEXT    NOT NULL,
	error      TEXT    NOT NULL DEFAULT '',
	error_kind TEXT    NOT NULL DEFAULT '',
	created    INTEGER NOT NULL,
	started    INTEGER,
	ended      INTEGER,
	result     TEXT,
	log_seq    INTEGER NOT NULL DEFAULT 0 -- last LogLine.Seq handed out
) STRICT;
CREATE INDEX runs_by_created  ON runs (created, id);
CREATE INDEX runs_by_playbook ON runs (playbook, created, id);
CREATE INDEX runs_by_status   ON runs (status);
CREATE INDEX runs_by_key      ON runs (source, key, pos);

CREATE TABLE tasks (
	upid        TEXT    PRIMARY KEY,
	run         TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	started     INTEGER NOT NULL,
	ended       INTEGER,
	exit_status TEXT    NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX tasks_by_run ON tasks (run);
CREATE INDEX tasks_open   ON tasks (run) WHERE ended IS NULL;

CREATE TABLE logs (
	run   TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	seq   INTEGER NOT NULL,
	time  INTEGER NOT NULL,
	level TEXT    NOT NULL,
	msg   TEXT    NOT NULL,
	attrs TEXT,
	PRIMARY KEY (run, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE timers (
	job  TEXT    PRIMARY KEY,
	last INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
`,
	// 2: the hub channel. guest_index is the per-guest index of the last
	// backup and restore drill (the last attempt and the last success, in
	// one row); hub_state holds the channel's persisted state by key;
	// runs_by_ended serves "the runs that ended since the last report".
	`
CREATE TABLE guest_index (
	vmid      INTEGER NOT NULL,
	kind      TEXT    NOT NULL,
	at        INTEGER NOT NULL,
	ok        INTEGER NOT NULL,
	run       TEXT    NOT NULL DEFAULT '',
	detail    TEXT    NOT NULL DEFAULT '',
	ok_at     INTEGER,
	ok_run    TEXT    NOT NULL DEFAULT '',
	ok_detail TEXT    NOT NULL DEFAULT '',
	PRIMARY KEY (vmid, kind)
) STRICT, WITHOUT ROWID;

CREATE TABLE hub_state (
	key     TEXT    PRIMARY KEY,
	value   BLOB    NOT NULL,
	updated INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX runs_by_ended ON runs (ended, id) WHERE ended IS NOT NULL;
`,
	// 3: the row Store.Probe rewrites to find out whether the store can
	// write.
	`
CREATE TABLE probe (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	at INTEGER NOT NULL
) STRICT;
`,
	// 4: the version store (versions.go): file contents by their SHA-256,
	// each playbook version as the set of files it loads, and the last
	// good version of each playbook file.
	`
CREATE TABLE sources (
	hash TEXT PRIMARY KEY, -- hex SHA-256 of body
	body BLOB NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE versions (
	version TEXT    PRIMARY KEY,
	created INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE version_files (
	version TEXT NOT NULL REFERENCES versions (version) ON DELETE CASCADE,
	path    TEXT NOT NULL,
	hash    TEXT NOT NULL REFERENCES sources (hash),
	PRIMARY KEY (version, path)
) STRICT, WITHOUT ROWID;
CREATE INDEX version_files_by_hash ON version_files (hash);

CREATE TABLE good_versions (
	file     TEXT    PRIMARY KEY,
	playbook TEXT    NOT NULL,
	version  TEXT    NOT NULL REFERENCES versions (version),
	updated  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
`,
	// 5: durable runs (journal.go): each run's journal of builtin calls,
	// and what its resumes did.
	`
CREATE TABLE journal (
	run     TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	seq     INTEGER NOT NULL,
	builtin TEXT    NOT NULL, -- "proxmox.start"; "undo" for the undo mark
	digest  TEXT    NOT NULL,
	pos     TEXT    NOT NULL DEFAULT '',
	intent  INTEGER,          -- when it was about to act (mutations, once)
	upid    TEXT    NOT NULL DEFAULT '',
	outcome BLOB,             -- NULL until it returned
	sealed  INTEGER NOT NULL DEFAULT 0, -- outcome encrypted with the state key
	PRIMARY KEY (run, seq)
) STRICT, WITHOUT ROWID;

ALTER TABLE runs ADD COLUMN resumes  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN replayed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN adopted  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN reissued INTEGER NOT NULL DEFAULT 0;
`,
	// 6: the guest API's tokens (guesttokens.go): one per guest, kept as
	// the SHA-256 of the token, never the token itself.
	`
CREATE TABLE guest_tokens (
	vmid    INTEGER PRIMARY KEY,
	hash    BLOB    NOT NULL UNIQUE,
	created INTEGER NOT NULL
) STRICT;
`,
	// 7: a run's secret parameters, sealed with the state key by the agent
	// (never in clear), so a queued or interrupted run can run after a
	// restart; cleared when the run ends.
	`
ALTER TABLE runs ADD COLUMN secrets BLOB;
`,
	// 8: the safety gate (runtime/safety, docs/safety.md): the pending
	// operations that wait for an operator's signature, and the audit of
	// every gate decision (seq orders it for the hub report's cursor).
	`
CREATE TABLE pending_ops (
	id       TEXT    PRIMARY KEY,
	run      TEXT    NOT NULL,
	playbook TEXT    NOT NULL,
	guest    INTEGER NOT NULL,
	what     TEXT    NOT NULL,
	blob     BLOB    NOT NULL,
	created  INTEGER NOT NULL,
	expires  INTEGER NOT NULL,
	state    TEXT    NOT NULL,              -- open, approved, refused
	resolved INTEGER,
	detail   TEXT    NOT NULL DEFAULT '',   -- the run that carried it out, or why not
	new_run  TEXT    NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX pending_open ON pending_ops (created) WHERE state = 'open';

CREATE TABLE gate_audit (
	seq      INTEGER PRIMARY KEY AUTOINCREMENT,
	at       INTEGER NOT NULL,
	run      TEXT    NOT NULL,
	entry    TEXT    NOT NULL -- the safety.AuditEntry as JSON
) STRICT;
`,
	// 9: task history (Store.TaskHistory): each task's kind, its UPID's
	// node, worker type and worker id ("pve:vzdump:101"), so that how long
	// the same kind of task took on the same guest is one index lookup.
	// Tasks recorded before have no kind and make no history.
	`
ALTER TABLE tasks ADD COLUMN kind TEXT NOT NULL DEFAULT '';
CREATE INDEX tasks_by_kind ON tasks (kind, ended);
`,
	// 10: the operator signature a run carries (the signed op blob and its
	// armoured signature), sealed with the state key by the agent, so that
	// a queued or interrupted signed run carries it after a restart;
	// cleared when the run ends.
	`
ALTER TABLE runs ADD COLUMN signature BLOB;
`,
	// 11: a task's UPID is recorded once, in tasks, with the journal call
	// that started it (seq; NULL: none, or no longer its own); a journal
	// entry's UPID is read from there. The journal's own copy goes: a UPID
	// it alone held (an adopted task) becomes a task of its run, open
	// until the next start follows it.
	`
ALTER TABLE tasks ADD COLUMN seq INTEGER;
UPDATE tasks SET seq = (SELECT j.seq FROM journal j WHERE j.run = tasks.run AND j.upid = tasks.upid);
INSERT INTO tasks (upid, run, seq, started)
	SELECT j.upid, j.run, j.seq, COALESCE(j.intent, 0) FROM journal j
	WHERE j.upid != '' AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.upid = j.upid);
CREATE INDEX tasks_by_call ON tasks (run, seq) WHERE seq IS NOT NULL;
ALTER TABLE journal DROP COLUMN upid;
`,
	// 12: the Proxmox a run was made against (Run.Origin), recorded when
	// it starts, so that a run interrupted against one host is never
	// resumed or undone against another. Runs recorded before have none
	// ('') and count as made against the current host.
	`
ALTER TABLE runs ADD COLUMN origin TEXT NOT NULL DEFAULT '';
`,
}

// migrate runs the migrations the database lacks, all in one transaction,
// so a crash mid-way leaves the old version intact. BEGIN IMMEDIATE (the
// writer's _txlock) keeps two processes from migrating at once.
func migrate(ctx context.Context, w *sql.DB) error {
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("migrate: database schema version %d is newer than this agent's (%d): a newer felhom-agent wrote it; run that version, or move the file aside to start an empty store", v, len(migrations))
	}
	if v == len(migrations) {
		return nil
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migrate to version %d: %w", i+1, err)
		}
	}
	// PRAGMA takes no bound parameters; the value is our own integer.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
