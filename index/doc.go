// Package index keeps roaring-bitmap indexes of users by tag and by consent
// fact, fed by the store's changelog, for push audiences (Art. 42: a push
// targeted by personal characteristics must skip users who refused the
// channel or turned personalization off).
//
// Users are bitmap positions by their dense store number
// (consent.Record.Number). The index keeps raw facts (tag held, channel
// refused, personalization off, minor, erased, each sensitive and guardian
// grant with its purpose and policy version) and applies the settings at
// query time, so a policy-version bump or a newly prohibited namespace
// changes audiences at once without rewriting a bitmap. An audience is for
// a push: a sensitive consent counts in it only when it was given for
// consent.PurposePush (Art. 22(4)). What an audience holds is defined user
// by user by consent.InPushAudience, and the tests hold the index to it.
//
// Erased users (Art. 24) and users who restricted processing of their data
// (Art. 23) are in no audience, whatever the settings. Of an erased user
// the index keeps only that their number is erased: not their ID (in
// memory or in a checkpoint) and no other fact. Of a restricted user it
// keeps the ID and that they are restricted, no other fact, until a change
// lifts it. A Shredded changelog entry (a change of a user erased since)
// makes its user unknown until the erase entry comes. Within one write (an
// Apply of a batch of changelog events, a Load...) the numbers of users
// erased, reset or made unknown are cleared out of every bitmap all at
// once, before the write lock is released (clear.go): readers, checkpoints,
// Stats and Equal see the index before the write or after it, so these
// rules hold at every point they can observe.
//
// Audiences are counted and built from derived bitmaps kept beside the
// facts (derived.go): per channel and kind of push, the users no such push
// may reach, and per fact an audience starts from, its users less those.
// They are built at the first audience that needs them and updated, number
// by number, by every write before its lock is released, so no audience
// ever sees them behind the facts; a settings change drops them. A count
// of a conjunction of tags and plain facts is one AndCardinality, with no
// bitmap built.
//
// An Index is derived data: it can be thrown away and rebuilt from the
// records (Build, which loads them with LoadMany on every core), or
// restored from a checkpoint and brought up to date by replaying the
// changelog after it (Unmarshal, then CatchUp or Apply).
// CatchUp rebuilds instead of replaying when the changelog cannot be
// trusted after the checkpoint (trimmed, behind it, unreadable).
//
// Partial state never crashes it. A user whose record is missing or
// corrupt, or whose number cannot be trusted (0, out of range, of another
// shard, held by another user), is unknown: in no audience, counted
// (Index.Unknown) and logged once by shard and number, until a changelog
// event brings their whole record again; everyone else is served as usual.
package index
