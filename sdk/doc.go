// Package sdk is what app backends embed: the answers recguard gives on every
// recommendation and every push, from a local cache kept true by following
// the store's changelogs.
//
//	c, err := sdk.New(ctx, st, sdk.DefaultConfig())
//	d, _ := c.Decide(ctx, "alice")                // personalized or not, why, which tags
//	ok, why, _ := c.CanPush(ctx, "alice", "sms", true)
//	res, _ := c.Recommend(ctx, "alice", ranker, fallback)
//	c.Apply(ctx, consent.SetPersonalization("alice", false)) // visible to c at once
//
// # Hot path
//
// Decide and CanPush on a cached user read an immutable per-user view through
// an atomic pointer in a set-associative cache and check the followers'
// lease: no lock, no allocation, no network. A miss costs one store round
// trip; concurrent misses are batched into one pipeline and concurrent misses
// for the same user share one read.
//
// # Failing closed
//
// When the client cannot be sure of a user's current consent it answers
// non-personalized and refuses pushes, and the Decision's Reason says why:
// consent.ReasonUnverified when a follower has not confirmed it is current
// within Config.Lease (the store is unreachable, or the follower is behind),
// consent.ReasonUnavailable when a miss could not be read. It never answers
// from a guess. When the changelog was trimmed past a follower's position the
// affected part of the cache is dropped and reloaded.
//
// # Restriction and erasure
//
// A user who restricted processing of their data (Art. 23) is answered
// non-personalized with consent.ReasonRestricted and refused every push
// with it; an erased user (Art. 24) likewise with consent.ReasonErased.
// Neither is in any audience, and no exposure of theirs is recorded
// (Recorded, OutcomeSink). A restricted user's cached view keeps no tags.
// When the changelog gives back an entry Shredded (its user was erased
// after the change), the user's cached view is dropped and the next answer
// reads the store: a view from before the erasure is never served.
//
// # Across processes
//
// Changes made elsewhere reach this client through the changelog, within the
// measured propagation time (docs/results.md). With Config.WaitForAll, Apply
// returns only after every live instance (instances announce themselves
// through the store's Presence ability) has applied the change, or
// ErrNotPropagated after Config.PropagationTimeout.
package sdk
