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
// changelog position), a settings change, or a purge of expired receipts
// (which receipts went). A snapshot is a meta line (format, shard count,
// how many snapshot lines follow, the number of the last operation they
// include) followed by the settings with their receipts, every user's
// record and receipts, each log's trim horizon and the kept changelog
// entries. A new store's file is its first, nearly empty snapshot. Each line
// is framed as
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
// # Changelogs
//
// Positions are written like Redis stream IDs, "<unix ms>-<seq>", taken from
// the wall clock (time.Now, never Options.Now) and strictly increasing per
// log, also across restarts and when the clock steps back. Each log keeps
// its newest Options.ChangelogMaxLen entries exactly; a read from a position
// older than the newest trimmed entry (including the zero Position once
// anything was trimmed) returns a *store.TrimmedError, which wraps
// store.ErrTrimmed.
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
