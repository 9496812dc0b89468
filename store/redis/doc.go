// Package redis is the Store on Redis, through a go-redis UniversalClient:
// the same code runs on one Redis server or a Redis Cluster.
//
// # Keyspace
//
// Every key starts with a prefix (default "rg") and carries a hash tag, so
// that everything one operation touches lives in one hash slot:
//
//	rg:{cfg}:meta          hash: shards (fixed at first start), epoch (the keyspace's identity)
//	rg:{cfg}:settings      hash: v (version), d (settings JSON), h/n (head of the receipt chain)
//	rg:{cfg}:receipts      list: settings receipts, "<unix ms> <JSON>"
//	rg:{cfg}:log           stream: settings changelog
//	rg:{cfg}:seq           hash: n, ms: the settings changelog's entry counter; e: the identity marker
//	rg:{cfg}:keys          hash: API keys, field = key ID, value = store.APIKey JSON
//	rg:{rights}:<yyyy>     list: rights requests received in UTC year yyyy, store.RightsRequest JSON, in the order logged
//	rg:{rights}:years      sorted set: the years that have a rights list, scored by the year
//	rg:{<s>}:u:<user>      hash: v (version), d (record JSON), n (user number)
//	rg:{<s>}:users         list: the shard's users in order of first change (position = local number - 1)
//	rg:{<s>}:r:<user>      list: the user's receipts, "<unix ms> <JSON>", oldest first
//	rg:{<s>}:log           stream: shard s's changelog
//	rg:{<s>}:rx            sorted set: users with receipts, scored by their oldest receipt's time
//	rg:{<s>}:seq           hash: n, ms: shard s's changelog entry counter; e: the identity marker
//	rg:{<s>}:outcomes      stream: shard s's outcome events (u user, x the event sealed under the user's data key)
//	rg:{<s>}:ledger        stream: shard s's exposures and pushes (p the user's pseudonym, e the entry's JSON without the user)
//	rg:{<s>}:lp            hash: ledger pseudonym -> user ID (field lp of the user's hash is the user's); an erasure deletes both
//	rg:{ledger}:prov       stream: provision records (audience exports, Art. 12), trimmed by time only, never under 3 years
//	rg:{ledger}:drops      hash: ledger kind -> entries that never reached the ledger
//
// where s = store.ShardOf(user, shards). A rights request is RPUSHed to its
// year's list and its year added to rg:{rights}:years in one MULTI (one
// slot); RightsRequests reads the lists of the years in the index that its
// range touches and keeps the requests received in the range.
//
// # Identity, data loss and regressions
//
// A keyspace is created only with Options.Init: New refuses an empty one with
// store.ErrNotInitialized, so a Redis that restarted without persistence, was
// flushed or replaced is never taken for a new deployment. Initialising
// writes a random epoch to rg:{cfg}:meta and, as the field e, to the counter
// hash of every changelog, one per slot. Every write script checks the marker
// of its slot, reads of records check it in the same script, and a changelog
// read that finds nothing new checks it too: a slot without it lost its data
// (store.ErrDataLoss, *store.DataLossError naming the logs). New refuses such
// a keyspace unless Options.AcceptDataLoss.
//
// A changelog read also checks the log has not gone back in time: the entry
// counter n (and its time) must be at or past the reader's position, and the
// first entry returned must be the one numbered right after it. Otherwise the
// read fails with a *store.RegressedError: a failover promoted a replica that
// missed entries, or an older snapshot was restored.
//
// A user whose record is gone while receipts of theirs remain (a manual DEL,
// an eviction, a partial restore), or whose record cannot be decoded, is
// reported as a *store.CorruptError; writes to them are refused rather than
// starting from an empty record.
//
// New also reads CONFIG GET (where allowed): an allkeys-* maxmemory-policy is
// refused (store.ErrUnsafeConfig) unless Options.AllowEvicting; a server that
// persists nothing is logged as a warning.
//
// # Durability
//
// Options.Durability.Replicas > 0 sends WAIT after every write, on the same
// connection as the write (on a cluster, a connection to the master of the
// write's slot), and acknowledges only when that many replicas have it; fewer
// within the timeout return the applied change with store.ErrNotReplicated.
//
// # Writes
//
// A change is computed in Go by consent.Record.Apply from the record read
// from Redis, then written by ONE Lua script that checks the record's
// version is still the one read (compare-and-set), writes the record,
// appends the receipt and XADDs the changelog entry. A lost race re-reads and
// retries (Options.MaxRetries). The domain rules therefore live in one place
// (package consent) for every store, and Redis still sees each change as one
// atomic operation in one slot.
//
// # Changelog horizon
//
// Each changelog stream is trimmed with XADD MAXLEN ~ Options.ChangelogMaxLen
// (default 1,000,000 entries per shard). Redis trims whole macro nodes, so a
// stream holds at least that many entries and a little more. Entry IDs are
// "<server ms>-<n>" where n numbers the log's entries 1, 2, 3, ... without
// gaps, so a reader whose position falls behind the trim point is told
// exactly (store.ErrTrimmed) and must rebuild from the records. (Redis 7.0
// does not advance a stream's max-deleted-entry-id when MAXLEN trims, so that
// field cannot be used.)
// With the default and 16 shards, a follower may fall behind by 16 million
// changes before it has to rebuild.
package redis
