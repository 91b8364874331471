// Package statedir owns the agent's state directory (serve --state-dir,
// default /var/lib/felhom-agent): what it holds, the lock that keeps it
// to one agent, and how it is exported and imported as one archive.
//
// # What the directory holds
//
//	runs.db, runs.db-wal, runs.db-shm
//	        the run store (SQLite, WAL): every run with its trigger and
//	        idempotency key (the hub's replay protection), parameters
//	        (secrets redacted), status, log, result and Proxmox tasks;
//	        timer ticks (catch-up); and the version store, the source of
//	        every playbook version that served (content-addressed) with
//	        the last good version of each playbook, served at start when
//	        the file on disk does not load. The -wal and -shm files are
//	        part of the database while an agent has it open: never copy
//	        runs.db alone from under a live agent (use Export).
//	lock    the lock file: an agent holds flock(LOCK_EX) on it for its
//	        whole life and writes its pid into it (Lock).
//	runs.db.new*
//	        a new store being created; a crash may leave it, and the next
//	        start replaces it.
//
// Any other regular file in the directory (key files, tokens) is the
// operator's and is carried by Export and Import as it is. Nothing else
// of the agent's state lives elsewhere: the playbooks are in their own
// directory, the configuration (Proxmox token, hub keys) in the
// configuration file or the environment.
//
// # One agent per directory
//
// [Lock] takes an exclusive, non-blocking flock on dir/lock. A second
// agent on the same directory is refused at start, naming the holder's
// pid ([LockedError]); the kernel releases the lock when the holder exits,
// however it exits, so a kill -9 never leaves a stale lock behind.
package statedir
