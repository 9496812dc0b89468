// Package storetest is the conformance suite every store.Store passes.
//
// A backend's test is a few lines:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			s, err := memory.Open(context.Background(), memory.Options{Dir: t.TempDir()})
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// Run calls newStore once per subtest and runs the subtests in parallel, so
// newStore must return a fresh, empty store that shares no state with any
// other store it returns (a Redis store gets its own key prefix or database),
// holding the default settings and DefaultShards or any other positive shard
// count. The suite closes some stores itself, so Close must be safe to call
// twice (the second call returns nil or an error wrapping store.ErrClosed).
//
// What the suite requires beyond the words of the Store contract, and how it
// reads the contract where the words leave room:
//
//   - Equality of records, receipts, settings and events is equality of their
//     JSON encodings: a store may drop monotonic clock readings and turn empty
//     slices into nil, but must return the times Record.Apply produced (UTC).
//   - Every record and receipt a store writes is exactly what
//     consent.Record.Apply returns for the change under the store's current
//     settings; the suite checks this by applying the same change to the model.
//   - The suite controls time: most changes carry an explicit Change.At near
//     time.Now, and PurgeExpired gets an explicit now. A store with an
//     injected clock should keep it within a day of the real clock. A change
//     with a zero At must come back with a non-zero At set by the store.
//   - Receipts may hide receipts older than the retention before PurgeExpired
//     deletes them, or keep listing them until then; the suite accepts both.
//     Whether a new store holds a receipt or a changelog entry for its
//     initial settings is left open too; the suite checks growth by one.
//   - Validation errors wrap the model's sentinel and are a
//     *consent.FieldError. Get and Receipts validate the user ID too and
//     return an error wrapping consent.ErrInvalidUserID (Design property 7).
//   - A no-op change returns the current record, a nil Receipt, a zero Pos
//     and Applied.Shard set to the user's shard.
//   - ReadChangelog and Tail return an error wrapping store.ErrInvalidPosition
//     for a log number that is neither a shard nor store.SettingsLog, and
//     ReadChangelog does so for a malformed Position too.
//   - A blocking ReadChangelog returns within about a second after its
//     context is cancelled or its deadline passes, with an error wrapping
//     ctx.Err() (context.Canceled or context.DeadlineExceeded), never an empty
//     success. A blocking read that times out with nothing to return waits at
//     least about its block duration.
//   - After Close every method that returns an error returns one wrapping
//     store.ErrClosed.
//   - Under contention on one user a store serializes the changes itself:
//     store.ErrConflict from Apply under the suite's modest load (8 writers)
//     is a failure.
//   - The optional abilities of store/optional.go (store.BatchGetter,
//     store.MultiLogReader, store.Presence) are checked, in the group
//     "Optional", for a store that implements them and skipped with the
//     reason for one that does not. A MultiLogReader whose ReadLogs returns
//     an error wrapping errors.ErrUnsupported (a Redis Cluster) is skipped
//     too. Beyond ReadChangelog's rules, ReadLogs returns an error wrapping
//     store.ErrInvalidPosition for logs and positions of different lengths
//     or no logs at all, and a blocking ReadLogs wakes for an entry in any
//     one of its logs. Presence is checked against the real clock: an
//     instance announced with a ttl of 300ms must be gone within about two
//     seconds, and still listed when announced again with a longer ttl.
//   - store.KeyStore and store.RightsLog are checked in the group
//     "KeysAndRights" (and skipped with the reason when missing). Invalid
//     input (a key ID outside 1 to 64 bytes of [a-z0-9], an empty role, a
//     rights request kind outside [a-z_]+, an outcome other than fulfilled,
//     rejected or failed, no Received time) is a *consent.FieldError wrapping
//     consent.ErrInvalidChange and stores nothing. RightsRequests returns
//     the requests received in [from, to) sorted by Received, those
//     received at the same time in the order they were logged.
//
// The suite does not exercise store.ErrTrimmed (no store has a way to trim on
// demand yet) nor store.ErrUnavailable (it cannot break a backend portably).
package storetest
