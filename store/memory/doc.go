// Package memory is recguard's embedded Store: all state lives in the
// process's memory, and with a data directory every change is also appended
// to a file there, so the data survives a restart. It has the same semantics
// as store/redis and passes the same conformance suite (store/storetest); use
// it for single-process deployments, tests, examples and development.
//
// # Concurrency
//
// Each shard has a writer lock, held while one change is computed by
// consent.Record.Apply, appended to the file and made visible, so the
// changes to one user are serialized; changes to users of different shards
// run in parallel, and their file syncs are shared (group commit). Reads
// (Get, Receipts, ReadChangelog, Tail, Settings) never wait for a sync: they
// see a change once its write has been made durable and applied.
//
// # The append-only file
//
// With Options.Dir set, the store keeps these files in the directory:
// recguard.aof (the data), recguard.aof.tmp (a snapshot being written,
// removed on Open), LOCK (held with flock(2) on systems that have it, so
// that two stores never share a directory), and for the API keys and the
// rights log (see Optional abilities) keys.json, keys.json.tmp and
// rights.jsonl.
//
// recguard.aof starts with a snapshot and continues with one line per
// durable operation: an applied change (the new record, the receipt and the
// changelog position; an erasure's receipt is written redacted), a settings
// change, or a purge (per shard: how many receipts of which users went, the
// anchor each user's record keeps, and the newest changelog entry expired;
// for the settings: how many receipts went and the newest entry expired).
// A snapshot is a meta line (format, shard count, how many snapshot lines
// follow, the number of the last operation they include) followed by the
// settings with their receipts, every user's record (with its purge
// anchor) and receipts, each log's trim horizon and the kept changelog
// entries, all as they are in memory: an erased user's receipts redacted
// and changelog entries shredded. A new store's file is its first, nearly
// empty snapshot. Each line is framed as
//
//	<payload length in decimal> <CRC-32C of the payload, 8 hex digits> <JSON payload>\n
//
// and the JSON payload never contains a newline. Operation lines are
// numbered without gaps over the life of the store, so a missing, repeated
// or reordered line is detected even though its own checksum is fine.
//
// On Open the file is replayed line by line. A final operation line that is
// incomplete or fails its length or checksum test is the trace of a crash in
// the middle of a write: it is discarded and the file truncated to the last
// good line, so a crash loses at most the write that was in flight, which
// was never acknowledged. Anything else that does not check out (a damaged
// line followed by more data, a wrong line number, a line that does not fit
// the state before it, an incomplete snapshot, which is always written whole
// and renamed into place) fails Open with an error wrapping ErrCorrupt and
// leaves the file as it is: a store never skips data silently.
//
// # Durability
//
// With the zero Options every write is fsynced before it is acknowledged
// (and before it is visible to readers). Concurrent writers to different
// shards share one fsync: the first to sync covers every line written so
// far. The cost is one fsync per write on an idle store (typically 0.1 to
// 10 ms, depending on the disk) and per shard under load, while throughput
// across shards grows with concurrency. Options.NoSync leaves syncing to the
// operating system: a crash of the process loses nothing, a crash of the
// machine may lose the most recent acknowledged writes.
//
// When a write or sync fails, the operation returns an error wrapping
// store.ErrUnavailable and the in-memory state does not change. The store
// then refuses every further write (reads keep working) until it is closed
// and opened again, because the file may or may not hold the failed line:
// after reopening, the changelog tells whether the operation took effect.
//
// # Compaction
//
// Compact rewrites the file as a snapshot of the live data. It writes a
// temporary file, fsyncs it, renames it over the old one and fsyncs the
// directory. Writers
// are blocked only while the state is captured (a copy of each shard's user
// map) and while the lines written during the rewrite are copied to the new
// file; readers are never blocked.
//
// Open compacts automatically when the file is at least
// Options.CompactMinBytes long (1 MiB by default) and holds more than twice
// as many lines as a snapshot of the live data would.
//
// # Erasure and retention in the file
//
// An erasure (consent.OpErase) changes the state at once (see Store.Apply:
// redacted receipts, shredded changelog entries, outcome events dropped),
// and Open replays an erasure line the same way, but the lines written
// before it still hold the user's content. So an erasure, and a
// PurgeExpired that removed anything, schedules a compaction: a background
// goroutine waits Options.CompactDelay (1 minute by default; the erasures
// and purges of that wait share one compaction), then compacts. While the
// store is open, the lines an erasure or a purge made obsolete leave the
// file within about twice CompactDelay plus twice the time a compaction
// takes (a compaction already running may have captured the state just
// before the erasure; the next one follows it after the delay). A failed
// compaction is retried after each further delay. A store closed before
// the compaction ran schedules it again on the next Open, which finds the
// erasure or purge lines after the file's snapshot. A negative
// CompactDelay turns this off (Compact still does it, on demand). Close
// stops the goroutine, abandoning a compaction in progress: it never waits
// for one to finish.
//
// # Changelogs
//
// Positions are written like Redis stream IDs, "<unix ms>-<seq>", taken from
// the wall clock (time.Now, never Options.Now) and strictly increasing per
// log, also across restarts and when the clock steps back. Each log keeps
// its newest Options.ChangelogMaxLen entries exactly, and PurgeExpired(now)
// removes the entries whose position is older than
// now - Options.ChangelogRetention (7 days by default), durably; a read
// from a position older than the newest trimmed entry (including the zero
// Position once anything was trimmed) returns a *store.TrimmedError, which
// wraps store.ErrTrimmed.
//
// When a user is erased, the user's earlier entries read back shredded
// (store.Event.Shredded: the record holds only the ID, number, version and
// chain head, the receipt is redacted, Prev is nil) and the erasure's own
// entry has the tombstone, its receipt redacted and no Prev.
//
// # Optional abilities
//
// The store implements store.BatchGetter (GetMany), store.MultiLogReader
// (ReadLogs: one blocking wait over several logs, woken by an entry in any
// of them) and store.Presence (Announce, Instances, Leave). Presence lives
// in memory only: announcements are never written to the file, so a
// restarted store knows no instances until they announce themselves again,
// and their expiry follows the wall clock (time.Now, never Options.Now).
//
// It implements store.OutcomeLog in memory only: a bounded queue of
// OutcomesPerShard events per shard, each stamped with its append time
// (wall clock), dropped by PurgeExpired(now) once older than
// now - Options.OutcomeRetention (180 days by default). Events of users who
// are erased or restrict processing are not stored; an erasure drops the
// user's events; ReadOutcomes skips those of users who restrict processing.
//
// It also implements store.KeyStore and store.RightsLog, kept apart from
// recguard.aof. With a data directory, every PutKey rewrites keys.json (a
// JSON array of all keys sorted by ID) through keys.json.tmp, which is
// synced and renamed into place before the directory is synced, so a crash
// leaves the old or the new file; Open removes a leftover keys.json.tmp and
// fails with an error wrapping ErrCorrupt when keys.json does not hold
// valid keys. Every LogRightsRequest appends one JSON line to rights.jsonl
// and syncs it (unless Options.NoSync) before it is acknowledged. Open reads
// the file back: a damaged last line, the trace of an append cut short,
// is dropped and the file truncated after the last good line; a damaged
// line followed by more data fails Open with an error wrapping ErrCorrupt.
// Without a data directory the keys and requests live in memory only.
package memory
