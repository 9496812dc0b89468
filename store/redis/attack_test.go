package redis_test

// Attacks on the Redis store's promises (erasure by crypto-shredding,
// self-proving receipts, restriction, fail-closed reads of damaged data),
// made the way someone with write access to Redis but not the chain key, a
// careless operator or a malicious app would. Each test asserts the promise:
// it fails when the promise is broken.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/store"
	rs "github.com/recguard/recguard/store/redis"
	"github.com/recguard/recguard/tags"
)

var atkKey = consent.ChainKey("attacker-test deployment chain key")

type atkEnv struct {
	c goredis.UniversalClient
	p string
	s *rs.Store
}

func atkOpen(t *testing.T, opts rs.Options) *atkEnv {
	t.Helper()
	c := redistest.Client(t)
	p := redistest.Prefix(t, c)
	opts.Prefix, opts.Init, opts.ChainKey = p, true, atkKey
	if opts.Shards == 0 {
		opts.Shards = 4
	}
	s, err := rs.New(context.Background(), c, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &atkEnv{c: c, p: p, s: s}
}

// reopen opens a second Store on the same keyspace (a restarted process).
func (e *atkEnv) reopen(t *testing.T, opts rs.Options) *rs.Store {
	t.Helper()
	opts.Prefix, opts.ChainKey = e.p, atkKey
	s, err := rs.New(context.Background(), e.c, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func (e *atkEnv) apply(t *testing.T, ch consent.Change) store.Applied {
	t.Helper()
	a, err := e.s.Apply(context.Background(), ch)
	if err != nil {
		t.Fatalf("Apply(%s %s): %v", ch.Op, ch.UserID, err)
	}
	return a
}

func (e *atkEnv) shard(u string) int { return store.ShardOf(u, e.s.Shards()) }
func (e *atkEnv) tag(u string) string {
	return e.p + ":{" + strconv.Itoa(e.shard(u)) + "}:"
}
func (e *atkEnv) userKey(u string) string     { return e.tag(u) + "u:" + u }
func (e *atkEnv) receiptsKey(u string) string { return e.tag(u) + "r:" + u }
func (e *atkEnv) logKey(u string) string      { return e.tag(u) + "log" }
func (e *atkEnv) outKey(u string) string      { return e.tag(u) + "outcomes" }

// dump returns every value under the prefix, of every type, one per line,
// found by SCAN: what someone reading the keyspace (or a dump of it) sees.
func (e *atkEnv) dump(t *testing.T) []byte {
	t.Helper()
	ctx := context.Background()
	var b bytes.Buffer
	it := e.c.Scan(ctx, 0, e.p+":*", 1000).Iterator()
	for it.Next(ctx) {
		k := it.Val()
		b.WriteString("KEY " + k + "\n")
		switch typ := e.c.Type(ctx, k).Val(); typ {
		case "string":
			b.WriteString(e.c.Get(ctx, k).Val() + "\n")
		case "hash":
			for f, v := range e.c.HGetAll(ctx, k).Val() {
				b.WriteString(f + "=" + v + "\n")
			}
		case "list":
			for _, v := range e.c.LRange(ctx, k, 0, -1).Val() {
				b.WriteString(v + "\n")
			}
		case "set":
			for _, v := range e.c.SMembers(ctx, k).Val() {
				b.WriteString(v + "\n")
			}
		case "zset":
			for _, v := range e.c.ZRange(ctx, k, 0, -1).Val() {
				b.WriteString(v + "\n")
			}
		case "stream":
			for _, m := range e.c.XRange(ctx, k, "-", "+").Val() {
				for f, v := range m.Values {
					b.WriteString(m.ID + " " + f + "=" + fmt.Sprint(v) + "\n")
				}
			}
		default:
			t.Fatalf("key %s of unexpected type %s", k, typ)
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// verify checks the user's receipts against the record's head, with the
// settings the store holds, as an auditor using the store would.
func atkVerify(t *testing.T, s store.Store, u string) error {
	t.Helper()
	ctx := context.Background()
	rec, err := s.Get(ctx, u)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	rcs, err := s.Receipts(ctx, u)
	if err != nil {
		return err
	}
	set, err := s.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return consent.VerifyChain(rcs, consent.HeadOf(rec, &set, time.Now()), atkKey)
}

// rewriteStream rebuilds a stream with the same IDs, letting edit change
// each entry's fields: streams cannot be edited in place, but whoever can
// write Redis can DEL and re-XADD them.
func (e *atkEnv) rewriteStream(t *testing.T, key string, edit func(i int, id string, vals map[string]any)) {
	t.Helper()
	ctx := context.Background()
	msgs, err := e.c.XRange(ctx, key, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.c.Del(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		edit(i, m.ID, m.Values)
		if err := e.c.XAdd(ctx, &goredis.XAddArgs{Stream: key, ID: m.ID, Values: m.Values}).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *atkEnv) userEntries(t *testing.T, u string) []goredis.XMessage {
	t.Helper()
	var out []goredis.XMessage
	for _, m := range e.c.XRange(context.Background(), e.logKey(u), "-", "+").Val() {
		if m.Values["u"] == u {
			out = append(out, m)
		}
	}
	return out
}

func (e *atkEnv) readLog(t *testing.T, u string) ([]store.Event, error) {
	t.Helper()
	return e.s.ReadChangelog(context.Background(), e.shard(u), "", 1000, 0)
}

func (e *atkEnv) outcomes(t *testing.T, s *rs.Store) []string {
	t.Helper()
	var out []string
	if err := s.ReadOutcomes(context.Background(), func(ev []byte) error {
		out = append(out, string(ev))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// secrets of the victim, each unique to them.
var atkSecrets = []string{"zzreason", "zzref", "zzskiing", "zzsnowboard", "zzdiabetes", "zzinferred", "zzitem", "zzrace", "zzlegacy"}

func containsAny(b []byte, subs []string) []string {
	var hit []string
	for _, s := range subs {
		if bytes.Contains(b, []byte(s)) {
			hit = append(hit, s)
		}
	}
	return hit
}

// victimHistory gives u a history touching every kind of personal detail.
func victimHistory(t *testing.T, e *atkEnv, u string) {
	g := consent.GrantSensitive(u, tags.MedicalHealth, consent.PurposePersonalization).Because("zzreason-grant")
	g.Ref = "zzref-evidence-1"
	for _, ch := range []consent.Change{
		g,
		consent.DeclareTag(u, "interest:zzskiing"),
		consent.DeclareTag(u, "medical_health:zzdiabetes"),
		consent.InferTag(u, "interest:zzinferred"),
		consent.CorrectTag(u, "interest:zzskiing", "interest:zzsnowboard"),
		consent.RefuseChannel(u, "sms").Because("zzreason-sms"),
	} {
		e.apply(t, ch)
	}
	if err := e.s.AppendOutcomes(context.Background(), []string{u, u}, [][]byte{
		[]byte(`{"user":"` + u + `","item":"zzitem-boots","rank":1}`),
		[]byte(`{"user":"` + u + `","item":"zzitem-poles","rank":2}`),
	}); err != nil {
		t.Fatal(err)
	}
}

// TestAttackRedisEraseThenScanKeyspace erases a user with a rich history
// and reads the whole keyspace (SCAN, every type): none of the user's
// strings may be left in clear, the store's reads give nothing back, the
// receipts are redacted and still verify, and the tombstone refuses the
// pipeline.
func TestAttackRedisEraseThenScanKeyspace(t *testing.T) {
	e := atkOpen(t, rs.Options{})
	ctx := context.Background()
	const u, other = "victim-7q", "bystander-3"
	victimHistory(t, e, u)
	e.apply(t, consent.DeclareTag(other, "interest:bystanderkeep"))
	if err := e.s.AppendOutcomes(ctx, []string{other}, [][]byte{[]byte(`{"user":"bystander-3","item":"byitem"}`)}); err != nil {
		t.Fatal(err)
	}
	before := e.dump(t)
	// Sealed from the start: reasons, references and outcome events are
	// nowhere in clear even before the erasure (tags are, in the live
	// record).
	if hit := containsAny(before, []string{"zzreason", "zzref", "zzitem"}); len(hit) > 0 {
		t.Errorf("before erasure %v are in clear", hit)
	}
	er := consent.Erase(u).Because("zzreason-erase")
	er.Ref = "zzref-erase"
	a := e.apply(t, er)
	if a.Receipt == nil || a.Receipt.Reason != "zzreason-erase" {
		t.Fatalf("the caller gets the whole erase receipt back: %+v", a.Receipt)
	}

	after := e.dump(t)
	if hit := containsAny(after, atkSecrets); len(hit) > 0 {
		t.Errorf("after erasure the keyspace holds the user's %v in clear", hit)
	}
	// What is tied to the victim (hash, receipts, entries, events) names
	// no category, channel, purpose or detail field.
	var mine bytes.Buffer
	for f, v := range e.c.HGetAll(ctx, e.userKey(u)).Val() {
		if f == "k" {
			t.Errorf("the data key survived the erasure")
		}
		mine.WriteString(v + "\n")
	}
	for _, v := range e.c.LRange(ctx, e.receiptsKey(u), 0, -1).Val() {
		mine.WriteString(v + "\n")
	}
	for _, m := range e.userEntries(t, u) {
		for f, v := range m.Values {
			if f == "x" {
				// Sealed under the destroyed key: random base64, which
				// can spell anything short ("sms" about once in 40 runs).
				continue
			}
			mine.WriteString(fmt.Sprint(v) + "\n")
		}
	}
	for _, bad := range []string{"medical_health", "sms", `"purpose"`, `"subject"`, `"old"`, `"new"`, `"reason"`, `"ref"`, `"salt"`, `"tags":{"entries"`} {
		if bytes.Contains(mine.Bytes(), []byte(bad)) {
			t.Errorf("the victim's keys still hold %s", bad)
		}
	}
	if !bytes.Contains(after, []byte("bystanderkeep")) {
		t.Errorf("the bystander's data went too")
	}

	// Reads through the store.
	rec, err := e.s.Get(ctx, u)
	if err != nil || !rec.State.Erased || len(rec.Tags.Entries)+len(rec.Tags.Suppressed) != 0 {
		t.Errorf("Get after erase: %+v, %v", rec, err)
	}
	rcs, err := e.s.Receipts(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rcs {
		if !r.Redacted || r.Reason != "" || r.Ref != "" || r.Subject != "" || r.Purpose != "" || r.Old != "" || r.New != "" || r.Salt != "" {
			t.Errorf("receipt seq %d not redacted: %+v", r.Seq, r)
		}
	}
	if err := atkVerify(t, e.s, u); err != nil {
		t.Errorf("redacted receipts no longer verify: %v", err)
	}
	evs, err := e.readLog(t, u)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Record == nil || ev.Record.UserID != u {
			continue
		}
		b, _ := json.Marshal(ev)
		if hit := containsAny(b, atkSecrets); len(hit) > 0 || (!ev.Shredded && !ev.Record.State.Erased) {
			t.Errorf("changelog entry v%d after erase readable: %s", ev.Record.Version, b)
		}
		if ev.Record.State.Erased && ev.Prev != nil {
			t.Errorf("the erase entry carries a previous record: %+v", ev.Prev)
		}
	}
	outs := e.outcomes(t, e.s)
	if len(outs) != 1 || !strings.Contains(outs[0], "byitem") {
		t.Errorf("ReadOutcomes after erase = %q, want only the bystander's event", outs)
	}
	exp, err := store.ExportUser(ctx, e.s, u)
	if err != nil || exp.Erasure == nil || len(exp.Receipts) != 0 {
		t.Errorf("export after erase: %+v, %v", exp, err)
	}

	// The tombstone refuses pipeline writes, even a declaration passed off
	// by the pipeline, and outcome events.
	for _, ch := range []consent.Change{
		consent.InferTag(u, "interest:zzinferred2"),
		consent.DeclareTag(u, "interest:zzpipeline").By(consent.ActorSystem, consent.SurfacePipeline),
		consent.DeclareTag(u, "interest:zzadmin").By(consent.ActorAdmin, consent.SurfaceAdminConsole),
	} {
		if _, err := e.s.Apply(ctx, ch); !errors.Is(err, consent.ErrForbidden) {
			t.Errorf("%s by %s on the tombstone: %v, want ErrForbidden", ch.Op, ch.Actor, err)
		}
	}
	n := e.c.XLen(ctx, e.outKey(u)).Val()
	if err := e.s.AppendOutcomes(ctx, []string{u}, [][]byte{[]byte(`{"item":"zzitem-after"}`)}); err != nil {
		t.Fatal(err)
	}
	if got := e.c.XLen(ctx, e.outKey(u)).Val(); got != n {
		t.Errorf("an outcome event of the erased user was stored (%d -> %d entries)", n, got)
	}
	if e.c.HExists(ctx, e.userKey(u), "k").Val() {
		t.Errorf("AppendOutcomes gave the tombstone a new data key")
	}
	if rec2, _ := e.s.Get(ctx, u); rec2.Version != rec.Version {
		t.Errorf("refused writes changed the tombstone: v%d -> v%d", rec.Version, rec2.Version)
	}
}

// TestAttackRedisUnsealedOutcomeEventsAfterErase puts outcome events in
// the stream that are not sealed: one in the format the previous release
// wrote (a single field e holding the event, no user) and one naming the
// user with its content in clear (as a buggy or malicious writer would).
// After the user's erasure (or restriction) the store must not hand their
// content over.
func TestAttackRedisUnsealedOutcomeEventsAfterErase(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields func(u string) []any
		then   func(u string) consent.Change
	}{
		{"pre-seal format {e} then erase", func(u string) []any {
			return []any{"e", `{"user":"` + u + `","item":"zzlegacy-item"}`}
		}, consent.Erase},
		{"{u,e} naming the user then erase", func(u string) []any {
			return []any{"u", u, "e", `{"user":"` + u + `","item":"zzlegacy-item"}`}
		}, consent.Erase},
		{"{u,e} naming the user then restrict", func(u string) []any {
			return []any{"u", u, "e", `{"user":"` + u + `","item":"zzlegacy-item"}`}
		}, consent.Restrict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := atkOpen(t, rs.Options{})
			ctx := context.Background()
			const u = "victim-out"
			e.apply(t, consent.DeclareTag(u, "interest:x"))
			if err := e.c.XAdd(ctx, &goredis.XAddArgs{Stream: e.outKey(u), Values: tc.fields(u)}).Err(); err != nil {
				t.Fatal(err)
			}
			e.apply(t, tc.then(u))
			for _, ev := range e.outcomes(t, e.s) {
				if strings.Contains(ev, "zzlegacy") {
					t.Errorf("after %s ReadOutcomes hands over the user's event: %s", tc.then(u).Op, ev)
				}
			}
			if tc.then(u).Op == consent.OpErase {
				// Events written whole (before sealing, or by hand) are
				// never read for an erased user; ScrubErased, run by serve
				// at start after an upgrade, deletes them.
				if _, err := e.s.ScrubErased(ctx); err != nil {
					t.Fatal(err)
				}
				if hit := containsAny(e.dump(t), []string{"zzlegacy"}); len(hit) > 0 {
					t.Errorf("after erasure and ScrubErased the outcome stream holds the user's event in clear")
				}
			}
		})
	}
}

// legacyApply is the apply script of the previous release (before
// sealing): record, receipt and changelog entry in clear. It stands for
// the data an upgraded deployment already holds.
var legacyApply = goredis.NewScript(`
local function nextid(seqkey)
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local last = redis.call('HMGET', seqkey, 'n', 'ms')
  local n = tonumber(last[1] or '0') + 1
  local lms = tonumber(last[2] or '0')
  if ms < lms then ms = lms end
  redis.call('HSET', seqkey, 'n', n, 'ms', ms)
  return string.format('%d-%d', ms, n)
end
if redis.call('HGET', KEYS[5], 'e') ~= ARGV[12] then return {-1} end
local cur = redis.call('HGET', KEYS[1], 'v') or '0'
if cur == '0' and redis.call('EXISTS', KEYS[2]) == 1 then return {-2} end
if cur ~= ARGV[1] then return {0, cur} end
local num = redis.call('HGET', KEYS[1], 'n')
if not num then
  local k = redis.call('RPUSH', KEYS[6], ARGV[8])
  num = string.format('%d', (k - 1) * tonumber(ARGV[9]) + tonumber(ARGV[10]) + 1)
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3], 'n', num)
redis.call('RPUSH', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[4], 'NX', ARGV[6], ARGV[8])
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], nextid(KEYS[5]), 'r', ARGV[3], 'c', ARGV[5], 'p', ARGV[11], 'n', num)
return {1, id, num}
`)

// legacyChanges writes chs for u as the previous release did.
func (e *atkEnv) legacyChanges(t *testing.T, u string, chs ...consent.Change) {
	t.Helper()
	ctx := context.Background()
	set, err := e.s.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	epoch := e.c.HGet(ctx, e.p+":{cfg}:meta", "epoch").Val()
	sh := e.shard(u)
	tag := e.tag(u)
	keys := []string{e.userKey(u), e.receiptsKey(u), e.logKey(u), tag + "rx", tag + "seq", tag + "users"}
	rec := consent.NewRecord(u)
	for _, ch := range chs {
		ch.At = time.Now()
		next, rc, err := rec.ApplyKeyed(ch, &set, atkKey)
		if err != nil || rc == nil {
			t.Fatalf("legacy %s: %v", ch.Op, err)
		}
		rj, _ := json.Marshal(next)
		cj, _ := json.Marshal(rc)
		pj, _ := json.Marshal(rec)
		ms := rc.At.UnixMilli()
		res, err := legacyApply.Run(ctx, e.c, keys, rec.Version, next.Version, rj, strconv.FormatInt(ms, 10)+" "+string(cj), cj, ms, 1000000, u, e.s.Shards(), sh, pj, epoch).Slice()
		if err != nil || res[0].(int64) != 1 {
			t.Fatalf("legacy script: %v %v", res, err)
		}
		n, _ := strconv.ParseUint(res[2].(string), 10, 32)
		next.Number = uint32(n)
		rec = next
	}
}

// TestAttackRedisEraseOfUpgradedUser erases, with this release, a user
// whose history was written by the previous release (records, receipts and
// changelog entries in clear, no data key): the erasure must still leave
// nothing of that history readable. And a user the previous release erased
// gets no outcome events stored or read.
func TestAttackRedisEraseOfUpgradedUser(t *testing.T) {
	t.Run("history in clear, erased now", func(t *testing.T) {
		e := atkOpen(t, rs.Options{})
		ctx := context.Background()
		const u = "upgraded-1"
		e.legacyChanges(t, u,
			consent.DeclareTag(u, "interest:zzlegacyski").Because("zzreason-old"),
			consent.RefuseChannel(u, "sms"))
		e.apply(t, consent.DeclareTag(u, "interest:zzskiing")) // first change under this release
		e.apply(t, consent.Erase(u))
		if hit := containsAny(e.dump(t), atkSecrets); len(hit) > 0 {
			t.Errorf("after erasure the keyspace holds the upgraded user's %v in clear", hit)
		}
		rcs, err := e.s.Receipts(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rcs {
			if !r.Redacted || r.Reason != "" || r.Subject != "" {
				t.Errorf("receipt seq %d of the erased user comes back whole: subject %q reason %q", r.Seq, r.Subject, r.Reason)
			}
		}
		// The scrub deleted the old entries: a reader from the start is
		// told it must rebuild; one after them reads the rest.
		evs, err := e.readLog(t, u)
		switch {
		case errors.Is(err, store.ErrTrimmed):
			evs = nil // nothing of the old entries can be read
		case err != nil:
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Record != nil && ev.Record.UserID == u && !ev.Shredded && !ev.Record.State.Erased {
				t.Errorf("changelog entry v%d of the erased user is read with its content: tags %v", ev.Record.Version, ev.Record.Tags.Entries)
			}
		}
	})
	t.Run("erased by the previous release", func(t *testing.T) {
		e := atkOpen(t, rs.Options{})
		const u = "upgraded-erased"
		e.legacyChanges(t, u, consent.DeclareTag(u, "interest:zzlegacy-a").Because("zzreason-legacy"), consent.Erase(u))
		// Read before the upgrade's scrub: nothing personal is served.
		if rec, _ := e.s.Get(context.Background(), u); len(rec.Tags.Suppressed) != 0 {
			t.Errorf("the previous release's tombstone is served with its suppressions: %v", rec.Tags.Suppressed)
		}
		if n, err := e.s.ScrubErased(context.Background()); err != nil || n != 1 {
			t.Fatalf("ScrubErased = %d, %v; want 1 user scrubbed", n, err)
		}
		rcs, err := e.s.Receipts(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rcs {
			if !r.Redacted {
				t.Errorf("receipt seq %d of a user erased by the previous release is read whole: subject %q reason %q", r.Seq, r.Subject, r.Reason)
			}
		}
		if hit := containsAny(e.dump(t), atkSecrets); len(hit) > 0 {
			t.Errorf("the keyspace holds %v of a user erased by the previous release", hit)
		}
		if err := e.s.AppendOutcomes(context.Background(), []string{u}, [][]byte{[]byte(`{"item":"zzitem-x"}`)}); err != nil {
			t.Fatal(err)
		}
		if n := e.c.XLen(context.Background(), e.outKey(u)).Val(); n != 0 {
			t.Errorf("%d outcome events of a user erased before the upgrade were stored", n)
		}
		if outs := e.outcomes(t, e.s); len(outs) != 0 {
			t.Errorf("ReadOutcomes hands over %q for a user erased before the upgrade", outs)
		}
	})
}

// TestAttackRedisReplayedSealedEntry replays, within one user's changelog,
// an older sealed entry in place of a newer one (same data key, so it
// decrypts): the entry says version 2 (a restriction) but its sealed
// content is version 1's unrestricted record. A reader must not take it
// for the change at that position.
func TestAttackRedisReplayedSealedEntry(t *testing.T) {
	for _, src := range []string{"the user's older entry", "one of the user's receipts"} {
		t.Run(src, func(t *testing.T) {
			e := atkOpen(t, rs.Options{})
			const u = "replayed"
			e.apply(t, consent.DeclareTag(u, "interest:ski"))
			e.apply(t, consent.Restrict(u))
			ents := e.userEntries(t, u)
			if len(ents) != 2 {
				t.Fatalf("%d entries", len(ents))
			}
			old := ents[0].Values["x"]
			if src == "one of the user's receipts" {
				old = blobOf(e.c.LIndex(context.Background(), e.receiptsKey(u), 1).Val())
			}
			e.rewriteStream(t, e.logKey(u), func(_ int, id string, vals map[string]any) {
				if id == ents[1].ID {
					vals["x"] = old
				}
			})
			evs, err := e.readLog(t, u)
			if err != nil {
				t.Logf("read refused: %v (fail closed)", err)
				return
			}
			for _, ev := range evs {
				if ev.Pos != store.Position(ents[1].ID) || ev.Shredded {
					continue
				}
				if ev.Record.UserID != u || ev.Record.Version != 2 || !ev.Record.State.Restricted {
					t.Errorf("the entry of version 2 (restrict) of %s reads as user %q version %d, restricted %t, tags %v: a sealed part from elsewhere is served as the change at that position",
						u, ev.Record.UserID, ev.Record.Version, ev.Record.State.Restricted, ev.Record.Tags.Entries)
				}
			}
		})
	}
}

// TestAttackRedisSwappedSealedEntriesAcrossUsers swaps the sealed parts of
// two users' entries: each must fail closed (shredded or an error), never
// be read under the other user's name.
func TestAttackRedisSwappedSealedEntriesAcrossUsers(t *testing.T) {
	e := atkOpen(t, rs.Options{Shards: 1})
	const a, b = "swap-a", "swap-b"
	e.apply(t, consent.DeclareTag(a, "interest:aaa"))
	e.apply(t, consent.DeclareTag(b, "interest:bbb"))
	ea, eb := e.userEntries(t, a), e.userEntries(t, b)
	xa, xb := ea[0].Values["x"], eb[0].Values["x"]
	e.rewriteStream(t, e.logKey(a), func(_ int, id string, vals map[string]any) {
		switch id {
		case ea[0].ID:
			vals["x"] = xb
		case eb[0].ID:
			vals["x"] = xa
		}
	})
	evs, err := e.readLog(t, a)
	if err != nil {
		return // fail closed
	}
	for _, ev := range evs {
		if ev.Shredded || ev.Record == nil {
			continue
		}
		for _, en := range ev.Record.Tags.Entries {
			if (ev.Record.UserID == a) != (en.Tag == "interest:aaa") {
				t.Errorf("entry of %s reads with tag %s", ev.Record.UserID, en.Tag)
			}
		}
	}
}

// TestAttackRedisReceiptBlobs edits the sealed parts of a live user's
// receipts: swapped between two of the user's receipts, replaced by
// another user's, dropped ("-"), truncated. Each is an edit of a receipt:
// VerifyChain must fail (or Receipts refuse), never pass on receipts
// whose content was changed or silently removed.
func TestAttackRedisReceiptBlobs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(items []string, other string) []string
	}{
		{"swapped within the user", func(items []string, _ string) []string {
			b0, b1 := blobOf(items[0]), blobOf(items[1])
			items[0] = withBlob(items[0], b1)
			items[1] = withBlob(items[1], b0)
			return items
		}},
		{"another user's blob", func(items []string, other string) []string {
			items[1] = withBlob(items[1], blobOf(other))
			return items
		}},
		{"blob dropped", func(items []string, _ string) []string {
			items[1] = withBlob(items[1], "-")
			return items
		}},
		{"blob truncated", func(items []string, _ string) []string {
			b := blobOf(items[1])
			items[1] = withBlob(items[1], b[:len(b)-4])
			return items
		}},
		{"blob bit-flipped", func(items []string, _ string) []string {
			b := []byte(blobOf(items[1]))
			if b[20] == 'A' {
				b[20] = 'B'
			} else {
				b[20] = 'A'
			}
			items[1] = withBlob(items[1], string(b))
			return items
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := atkOpen(t, rs.Options{})
			ctx := context.Background()
			const u, o = "rcpt-victim", "rcpt-other"
			g := consent.GrantSensitive(u, tags.MedicalHealth, consent.PurposePersonalization)
			g.Ref = "guardian-evidence-123"
			e.apply(t, consent.RefuseChannel(u, "sms").Because("too many"))
			e.apply(t, g)
			e.apply(t, consent.DeclareTag(u, "medical_health:x"))
			e.apply(t, consent.DeclareTag(o, "interest:o"))
			if err := atkVerify(t, e.s, u); err != nil {
				t.Fatalf("untouched: %v", err)
			}
			items := e.c.LRange(ctx, e.receiptsKey(u), 0, -1).Val()
			other := e.c.LIndex(ctx, e.receiptsKey(o), 0).Val()
			items = tc.tamper(items, other)
			e.c.Del(ctx, e.receiptsKey(u))
			for _, it := range items {
				e.c.RPush(ctx, e.receiptsKey(u), it)
			}
			rcs, rerr := e.s.Receipts(ctx, u)
			verr := atkVerify(t, e.s, u)
			if rerr == nil && verr == nil {
				t.Errorf("the live user's receipts were edited (%s) and still verify; receipt 2 reads as redacted=%t purpose %q ref %q",
					tc.name, rcs[1].Redacted, rcs[1].Purpose, rcs[1].Ref)
			}
		})
	}
}

func blobOf(item string) string {
	f := strings.SplitN(item, " ", 3)
	return f[1]
}

func withBlob(item, blob string) string {
	f := strings.SplitN(item, " ", 3)
	return f[0] + " " + blob + " " + f[2]
}

// TestAttackRedisDamagedDataKey damages a live user's data key (31 bytes,
// 33 bytes, empty, another user's): reads fail closed (no garbage), and
// the user can still opt out, restrict and be erased.
func TestAttackRedisDamagedDataKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  func(e *atkEnv) string
	}{
		{"31 bytes", func(*atkEnv) string { return strings.Repeat("k", 31) }},
		{"33 bytes", func(*atkEnv) string { return strings.Repeat("k", 33) }},
		{"empty", func(*atkEnv) string { return "" }},
		{"another user's key", func(e *atkEnv) string {
			return e.c.HGet(context.Background(), e.userKey("dk-other"), "k").Val()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := atkOpen(t, rs.Options{MaxRetries: 50})
			ctx := context.Background()
			const u = "dk-victim"
			e.apply(t, consent.DeclareTag(u, "interest:secretski"))
			e.apply(t, consent.DeclareTag("dk-other", "interest:other"))
			if err := e.s.AppendOutcomes(ctx, []string{u}, [][]byte{[]byte(`{"item":"dk-item"}`)}); err != nil {
				t.Fatal(err)
			}
			e.c.HSet(ctx, e.userKey(u), "k", tc.key(e))

			// Reads: no panic, no content decrypted under a wrong key.
			evs, err := e.readLog(t, u)
			if err == nil {
				for _, ev := range evs {
					if ev.Record != nil && ev.Record.UserID == u && !ev.Shredded {
						t.Errorf("entry v%d read under a damaged key: %+v", ev.Record.Version, ev.Record)
					}
				}
			}
			for _, o := range e.outcomes(t, e.s) {
				if o != `{"item":"dk-item"}` && strings.Contains(o, "dk-item") {
					t.Errorf("garbage outcome event: %q", o)
				}
			}
			// Only noise or nothing: an event that is not one appended is garbage.
			for _, o := range e.outcomes(t, e.s) {
				if !json.Valid([]byte(o)) {
					t.Errorf("ReadOutcomes hands over a non-event (sealed bytes under a key that no longer opens them): %.40q...", o)
				}
			}

			// The user can always say no.
			for _, ch := range []consent.Change{consent.SetPersonalization(u, false), consent.Restrict(u)} {
				start := time.Now()
				if _, err := e.s.Apply(ctx, ch); err != nil {
					t.Errorf("%s refused after the data key was damaged (%v later): %v", ch.Op, time.Since(start).Round(time.Millisecond), err)
				}
			}
			if rec, _ := e.s.Get(ctx, u); !rec.State.PersonalizationOff || !rec.State.Restricted {
				t.Errorf("the opt-out/restriction did not take: %+v", rec.State)
			}
			if _, err := e.s.Apply(ctx, consent.Erase(u)); err != nil {
				t.Fatalf("erase after the key was damaged: %v", err)
			}
			if e.c.HExists(ctx, e.userKey(u), "k").Val() {
				t.Errorf("erase left the damaged key")
			}
		})
	}
}

// TestAttackRedisOutcomesAfterKeyChange: a user's data key changes (they
// were erased and came back with their own change; or the field k was
// deleted by an operator and a new key was made): events sealed under the
// old key are noise and must not be handed over as events.
func TestAttackRedisOutcomesAfterKeyChange(t *testing.T) {
	for _, how := range []string{"erased, then back", "k deleted, then a change"} {
		t.Run(how, func(t *testing.T) {
			e := atkOpen(t, rs.Options{})
			ctx := context.Background()
			const u = "rekeyed"
			e.apply(t, consent.DeclareTag(u, "interest:a"))
			if err := e.s.AppendOutcomes(ctx, []string{u}, [][]byte{[]byte(`{"item":"zzitem-old"}`)}); err != nil {
				t.Fatal(err)
			}
			if how == "erased, then back" {
				e.apply(t, consent.Erase(u))
			} else {
				e.c.HDel(ctx, e.userKey(u), "k")
				// Readers must not serve stale personalized data: Get
				// is the live record.
				rec, err := e.s.Get(ctx, u)
				if err != nil || len(rec.Tags.Entries) != 1 {
					t.Fatalf("Get with k gone: %+v %v", rec, err)
				}
				evs, err := e.readLog(t, u)
				if err == nil && len(evs) > 0 && !evs[0].Shredded {
					t.Errorf("an entry sealed under the deleted key was read: %+v", evs[0])
				}
			}
			e.apply(t, consent.DeclareTag(u, "interest:b"))
			if err := e.s.AppendOutcomes(ctx, []string{u}, [][]byte{[]byte(`{"item":"new"}`)}); err != nil {
				t.Fatal(err)
			}
			outs := e.outcomes(t, e.s)
			if len(outs) != 1 || outs[0] != `{"item":"new"}` {
				t.Errorf("ReadOutcomes = %.80q, want only the event sealed under the current key", outs)
			}
		})
	}
}

// TestAttackRedisCopiedDataKey copies user A's data key into victim V's
// hash, then erases A: nothing of A is read back through the store, and
// V's own earlier content fails closed rather than decrypting wrongly.
func TestAttackRedisCopiedDataKey(t *testing.T) {
	e := atkOpen(t, rs.Options{Shards: 1})
	ctx := context.Background()
	const a, v = "key-owner", "key-victim"
	e.apply(t, consent.DeclareTag(a, "interest:zzskiing"))
	if err := e.s.AppendOutcomes(ctx, []string{a}, [][]byte{[]byte(`{"item":"zzitem-a"}`)}); err != nil {
		t.Fatal(err)
	}
	e.apply(t, consent.DeclareTag(v, "interest:vvv"))
	e.c.HSet(ctx, e.userKey(v), "k", e.c.HGet(ctx, e.userKey(a), "k").Val())
	e.apply(t, consent.Erase(a))
	rcs, _ := e.s.Receipts(ctx, a)
	for _, r := range rcs {
		if !r.Redacted {
			t.Errorf("A's receipt read back whole: %+v", r)
		}
	}
	evs, err := e.readLog(t, a)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		b, _ := json.Marshal(ev)
		if bytes.Contains(b, []byte("zzskiing")) {
			t.Errorf("A's erased content read: %s", b)
		}
		if ev.Record != nil && ev.Record.UserID == v && !ev.Shredded && ev.Record.Version == 1 {
			if len(ev.Record.Tags.Entries) != 1 || ev.Record.Tags.Entries[0].Tag != "interest:vvv" {
				t.Errorf("V's entry decrypted into something else: %+v", ev.Record)
			}
		}
	}
	for _, o := range e.outcomes(t, e.s) {
		if strings.Contains(o, "zzitem") {
			t.Errorf("A's outcome event read after A's erasure: %s", o)
		}
	}
}

// TestAttackRedisRollback rolls a record back with a saved copy of its
// hash, forges its head and strips its MAC, and checks VerifyChain. A full
// rollback (hash and receipts both restored to an older genuine state) is
// a known limit: it is shown, not asserted away.
func TestAttackRedisRollback(t *testing.T) {
	setup := func(t *testing.T) (*atkEnv, string, map[string]string, int64) {
		e := atkOpen(t, rs.Options{})
		const u = "rolled"
		e.apply(t, consent.DeclareTag(u, "interest:a"))
		e.apply(t, consent.RefuseChannel(u, "sms"))
		saved := e.c.HGetAll(context.Background(), e.userKey(u)).Val()
		n := e.c.LLen(context.Background(), e.receiptsKey(u)).Val()
		e.apply(t, consent.SetPersonalization(u, false))
		e.apply(t, consent.Restrict(u))
		if err := atkVerify(t, e.s, u); err != nil {
			t.Fatal(err)
		}
		return e, u, saved, n
	}
	restore := func(e *atkEnv, key string, h map[string]string) {
		ctx := context.Background()
		e.c.Del(ctx, key)
		for f, v := range h {
			e.c.HSet(ctx, key, f, v)
		}
	}
	t.Run("hash restored, receipts kept", func(t *testing.T) {
		e, u, saved, _ := setup(t)
		restore(e, e.userKey(u), saved)
		if err := atkVerify(t, e.s, u); err == nil {
			t.Errorf("a rolled-back record verifies against the newer receipts")
		}
	})
	t.Run("head forged to an older version, newest receipts popped", func(t *testing.T) {
		e, u, _, _ := setup(t)
		ctx := context.Background()
		rcs, _ := e.s.Receipts(ctx, u)
		var rec consent.Record
		_ = json.Unmarshal([]byte(e.c.HGet(ctx, e.userKey(u), "d").Val()), &rec)
		rec.Version, rec.LastHash = 2, rcs[1].Hash
		rec.State.Restricted, rec.State.PersonalizationOff = false, false
		d, _ := json.Marshal(rec)
		e.c.HSet(ctx, e.userKey(u), "v", "2", "d", string(d))
		e.c.RPop(ctx, e.receiptsKey(u))
		e.c.RPop(ctx, e.receiptsKey(u))
		if err := atkVerify(t, e.s, u); err == nil {
			t.Errorf("a forged head verifies")
		}
		rec.HeadMAC = ""
		d, _ = json.Marshal(rec)
		e.c.HSet(ctx, e.userKey(u), "d", string(d))
		if err := atkVerify(t, e.s, u); err == nil {
			t.Errorf("a forged head without its MAC verifies")
		}
	})
	t.Run("oldest receipts popped, another user's genuine anchor or a forged one", func(t *testing.T) {
		e, u, _, _ := setup(t)
		ctx := context.Background()
		// Another user whose old receipts were purged for real: a
		// genuine anchor under the deployment's key.
		const o = "anchored-other"
		for i, ch := range []consent.Change{consent.DeclareTag(o, "interest:x"), consent.RefuseChannel(o, "sms")} {
			ch.At = time.Now().Add(-4*365*24*time.Hour + time.Duration(i)*time.Minute)
			e.apply(t, ch)
		}
		e.apply(t, consent.SetPersonalization(o, false))
		if n, err := e.s.PurgeExpired(ctx, time.Now()); err != nil || n != 2 {
			t.Fatalf("purge: %d, %v", n, err)
		}
		anchor := e.c.HGet(ctx, e.userKey(o), "a").Val()
		if anchor == "" {
			t.Fatal("no anchor left by the purge")
		}
		e.c.LPop(ctx, e.receiptsKey(u))
		e.c.LPop(ctx, e.receiptsKey(u))
		e.c.HSet(ctx, e.userKey(u), "a", anchor)
		if err := atkVerify(t, e.s, u); err == nil {
			t.Errorf("another user's genuine anchor covers the victim's removed receipts")
		}
		rcs, _ := e.s.Receipts(ctx, u)
		var a consent.Anchor
		_ = json.Unmarshal([]byte(anchor), &a)
		a.Seq, a.Hash, a.At = rcs[0].Seq-1, rcs[0].PrevHash, time.Now().Add(-4*365*24*time.Hour)
		b, _ := json.Marshal(a)
		e.c.HSet(ctx, e.userKey(u), "a", string(b))
		if err := atkVerify(t, e.s, u); err == nil {
			t.Errorf("a forged anchor (right seq and hash, old time, someone else's MAC) verifies")
		}
	})
	t.Run("whole user deleted (hash and receipts)", func(t *testing.T) {
		e, u, _, _ := setup(t)
		ctx := context.Background()
		e.c.Del(ctx, e.userKey(u), e.receiptsKey(u))
		rep, err := store.Verify(ctx, e.s, atkKey, store.VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK() {
			t.Errorf("store.Verify passes after a user's record and receipts were deleted")
		}
	})
	t.Run("known limit: full rollback to an older genuine state", func(t *testing.T) {
		e, u, saved, n := setup(t)
		restore(e, e.userKey(u), saved)
		e.c.LTrim(context.Background(), e.receiptsKey(u), 0, n-1)
		err := atkVerify(t, e.s, u)
		rec, _ := e.s.Get(context.Background(), u)
		t.Logf("KNOWN LIMIT: hash and receipts restored to version 2: VerifyChain -> %v; the record reads restricted=%t off=%t (the restriction and opt-out are gone)",
			err, rec.State.Restricted, rec.State.PersonalizationOff)
	})
}

// TestAttackRedisTamperedRetention lowers the receipts' retention in the
// stored settings (which SetSettings refuses under three years, Art. 12)
// straight in Redis, so that the store's own purge removes receipts long
// before their retention and leaves a genuine anchor. Either the purge
// must refuse, or VerifyChain against the store's head must fail.
func TestAttackRedisTamperedRetention(t *testing.T) {
	e := atkOpen(t, rs.Options{})
	ctx := context.Background()
	const u = "purged-early"
	at := time.Now().Add(-2 * time.Hour)
	for i, ch := range []consent.Change{consent.DeclareTag(u, "interest:a"), consent.RefuseChannel(u, "sms"), consent.SetPersonalization(u, false)} {
		ch.At = at.Add(time.Duration(i) * time.Minute)
		e.apply(t, ch)
	}
	e.apply(t, consent.DeclareTag(u, "interest:b")) // now
	set, err := e.s.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	set.Retention = time.Hour
	d, _ := json.Marshal(set)
	e.c.HSet(ctx, e.p+":{cfg}:settings", "d", string(d))
	s2 := e.reopen(t, rs.Options{}) // a restarted process reads them
	n, err := s2.PurgeExpired(ctx, time.Now())
	rcs, _ := s2.Receipts(ctx, u)
	verr := atkVerify(t, s2, u)
	def := consent.DefaultSettings()
	rec, _ := s2.Get(ctx, u)
	trusted := consent.VerifyChain(rcs, consent.HeadOf(rec, &def, time.Now()), atkKey)
	t.Logf("purge: %d removed (%v); %d receipts left; VerifyChain with the store's settings: %v; with the 3-year minimum: %v", n, err, len(rcs), verr, trusted)
	uv, err := store.VerifyUser(ctx, s2, atkKey, u, store.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("store.VerifyUser: findings %+v", uv.Findings)
	if len(rcs) < 4 && verr == nil {
		t.Errorf("receipts 2 hours old were purged under a retention of 1h written straight into Redis, and the chain verifies against the store's own settings")
	}
	if len(rcs) < 4 && len(uv.Findings) == 0 {
		t.Errorf("store.VerifyUser reports nothing for receipts purged before the 3-year minimum retention")
	}
}

// TestAttackRedisForgedStateUnderGenuineHead edits a record's consent
// state straight in Redis (lifts a restriction, turns personalization
// back on, un-refuses a channel, adds a tag) and keeps its version, last
// hash and head MAC. Record.HeadMAC's documentation says a record "forged
// by whoever can write the store but lacks the key does not verify": the
// auditor's checks (VerifyChain, store.VerifyUser) must notice.
func TestAttackRedisForgedStateUnderGenuineHead(t *testing.T) {
	e := atkOpen(t, rs.Options{})
	ctx := context.Background()
	const u = "forged-state"
	e.apply(t, consent.DeclareTag(u, "interest:a"))
	e.apply(t, consent.RefuseChannel(u, "sms"))
	e.apply(t, consent.SetPersonalization(u, false))
	e.apply(t, consent.Restrict(u))
	var rec consent.Record
	if err := json.Unmarshal([]byte(e.c.HGet(ctx, e.userKey(u), "d").Val()), &rec); err != nil {
		t.Fatal(err)
	}
	rec.State.Restricted, rec.State.PersonalizationOff, rec.State.RefusedChannels = false, false, nil
	rec.Tags.Entries = append(rec.Tags.Entries, tags.Entry{Tag: "interest:planted", Source: tags.Declared, At: rec.UpdatedAt})
	d, _ := json.Marshal(rec)
	e.c.HSet(ctx, e.userKey(u), "d", string(d))
	e.c.HDel(ctx, e.userKey(u), "st")

	got, _ := e.s.Get(ctx, u)
	set, _ := e.s.Settings(ctx)
	dec := consent.Evaluate(got.State, got.Tags, &set)
	verr := atkVerify(t, e.s, u)
	uv, err := store.VerifyUser(ctx, e.s, atkKey, u, store.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("forged record served: personalized=%t tags=%v; VerifyChain: %v; VerifyUser findings: %+v", dec.Personalized, dec.Tags, verr, uv.Findings)
	if verr == nil && len(uv.Findings) == 0 {
		t.Errorf("a record whose consent state was forged in Redis (restriction lifted, opt-out and refusal undone, a tag planted) verifies: HeadMAC covers only user, version and last hash")
	}
}

// TestAttackRedisRestrict checks restriction end to end: no events stored
// or read, no inference, not personalized, and none of it lifted by a
// pipeline.
func TestAttackRedisRestrict(t *testing.T) {
	e := atkOpen(t, rs.Options{})
	ctx := context.Background()
	const u = "restricted-1"
	e.apply(t, consent.DeclareTag(u, "interest:a"))
	if err := e.s.AppendOutcomes(ctx, []string{u}, [][]byte{[]byte(`{"item":"before"}`)}); err != nil {
		t.Fatal(err)
	}
	e.apply(t, consent.Restrict(u).By(consent.ActorAdmin, consent.SurfaceAdminConsole))
	n := e.c.XLen(ctx, e.outKey(u)).Val()
	if err := e.s.AppendOutcomes(ctx, []string{u, u}, [][]byte{[]byte(`{"item":"after1"}`), []byte(`{"item":"after2"}`)}); err != nil {
		t.Fatal(err)
	}
	if got := e.c.XLen(ctx, e.outKey(u)).Val(); got != n {
		t.Errorf("events of a restricted user stored: %d -> %d", n, got)
	}
	if outs := e.outcomes(t, e.s); len(outs) != 0 {
		t.Errorf("events of a restricted user read: %q", outs)
	}
	if _, err := e.s.Apply(ctx, consent.InferTag(u, "interest:inferred")); !errors.Is(err, consent.ErrInferenceRefused) {
		t.Errorf("inference on a restricted user: %v", err)
	}
	for _, ch := range []consent.Change{
		consent.Unrestrict(u).By(consent.ActorSystem, consent.SurfacePipeline),
		consent.Unrestrict(u).By(consent.ActorAdmin, consent.SurfaceAdminConsole),
	} {
		if _, err := e.s.Apply(ctx, ch); err == nil {
			t.Errorf("restriction lifted by %s", ch.Actor)
		}
	}
	rec, _ := e.s.Get(ctx, u)
	set, _ := e.s.Settings(ctx)
	d := consent.Evaluate(rec.State, rec.Tags, &set)
	if d.Personalized || len(d.Tags) != 0 {
		t.Errorf("restricted user personalized: %+v", d)
	}
	if ok, _ := d.CanPush("push", false); ok {
		t.Errorf("restricted user may get an untargeted push")
	}
}

// TestAttackRedisRaceEraseVsWrites races an erasure against outcome
// appends and pipeline inferences for the same user: once all is done the
// user is a tombstone with no key, nothing of theirs is stored in clear or
// read back, and no event was stored after the erasure under a live key.
func TestAttackRedisRaceEraseVsWrites(t *testing.T) {
	for round := 0; round < 5; round++ {
		e := atkOpen(t, rs.Options{})
		ctx := context.Background()
		const u = "racer"
		e.apply(t, consent.DeclareTag(u, "interest:zzrace-seed"))
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_ = e.s.AppendOutcomes(ctx, []string{u}, [][]byte{[]byte(`{"item":"zzrace-` + strconv.Itoa(i) + `"}`)})
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = e.s.Apply(ctx, consent.InferTag(u, tags.Tag("interest:zzrace"+strconv.Itoa(i))))
			}
		}()
		time.Sleep(time.Duration(10+round*10) * time.Millisecond)
		e.apply(t, consent.Erase(u))
		time.Sleep(20 * time.Millisecond)
		close(stop)
		wg.Wait()
		rec, _ := e.s.Get(ctx, u)
		if !rec.State.Erased {
			t.Fatalf("round %d: not a tombstone after the race: %+v", round, rec.State)
		}
		if e.c.HExists(ctx, e.userKey(u), "k").Val() {
			t.Errorf("round %d: the tombstone has a data key after the race", round)
		}
		if hit := containsAny(e.dump(t), []string{"zzrace"}); len(hit) > 0 {
			t.Errorf("round %d: the keyspace holds the user's content in clear", round)
		}
		if outs := e.outcomes(t, e.s); len(outs) != 0 {
			t.Errorf("round %d: %d events of the erased user read, e.g. %.60q", round, len(outs), outs[0])
		}
		evs, err := e.readLog(t, u)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Record != nil && !ev.Shredded && !ev.Record.State.Erased {
				t.Errorf("round %d: entry v%d readable after the erasure", round, ev.Record.Version)
			}
		}
		rcs, _ := e.s.Receipts(ctx, u)
		for _, r := range rcs {
			if !r.Redacted {
				t.Errorf("round %d: receipt seq %d not redacted", round, r.Seq)
			}
		}
		if err := atkVerify(t, e.s, u); err != nil {
			t.Errorf("round %d: %v", round, err)
		}
	}
}

// TestAttackRedisDamagedEntryBlob damages a live user's sealed changelog
// entry in several ways: reads never crash, and the entry is shredded or
// the read fails as trimmed, never served as content.
func TestAttackRedisDamagedEntryBlob(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(x string) string
	}{
		{"truncated by one", func(x string) string { return x[:len(x)-1] }},
		{"truncated to 10", func(x string) string { return x[:10] }},
		{"not base64", func(string) string { return "!!not base64!!" }},
		{"bit flip", func(x string) string {
			b := []byte(x)
			if b[30] == 'Q' {
				b[30] = 'R'
			} else {
				b[30] = 'Q'
			}
			return string(b)
		}},
		{"empty", func(string) string { return "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := atkOpen(t, rs.Options{})
			const u = "blob-victim"
			e.apply(t, consent.DeclareTag(u, "interest:a"))
			e.apply(t, consent.DeclareTag(u, "interest:b"))
			first := e.userEntries(t, u)[0].ID
			e.rewriteStream(t, e.logKey(u), func(_ int, id string, vals map[string]any) {
				if id == first {
					vals["x"] = tc.edit(vals["x"].(string))
				}
			})
			evs, err := e.readLog(t, u)
			if err != nil {
				if !errors.Is(err, store.ErrTrimmed) {
					t.Errorf("read error %v, want one wrapping ErrTrimmed (rebuild)", err)
				}
				return
			}
			for _, ev := range evs {
				if ev.Pos == store.Position(first) && !ev.Shredded {
					t.Errorf("damaged entry served: %+v", ev.Record)
				}
			}
		})
	}
}

// TestAttackRedisReceiptItemsEdited edits whole receipt items of a live
// user in clear: reordered, the actor changed, the time changed, an item
// repeated, an item of another user spliced in. VerifyChain must fail.
func TestAttackRedisReceiptItemsEdited(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(items []string, other string) []string
	}{
		{"two swapped", func(it []string, _ string) []string { it[1], it[2] = it[2], it[1]; return it }},
		{"actor changed", func(it []string, _ string) []string {
			it[1] = strings.Replace(it[1], `"actor":"user"`, `"actor":"admin"`, 1)
			return it
		}},
		{"time changed", func(it []string, _ string) []string {
			it[1] = strings.Replace(it[1], `"at":"20`, `"at":"19`, 1)
			return it
		}},
		{"one repeated", func(it []string, _ string) []string { return append(it[:2], it[1:]...) }},
		{"another user's spliced in", func(it []string, other string) []string { it[1] = other; return it }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := atkOpen(t, rs.Options{Shards: 1})
			ctx := context.Background()
			const u, o = "items-victim", "items-other"
			for _, ch := range []consent.Change{consent.DeclareTag(u, "interest:a"), consent.RefuseChannel(u, "sms"), consent.SetPersonalization(u, false)} {
				e.apply(t, ch)
			}
			e.apply(t, consent.DeclareTag(o, "interest:o"))
			e.apply(t, consent.RefuseChannel(o, "sms"))
			items := e.c.LRange(ctx, e.receiptsKey(u), 0, -1).Val()
			items = tc.tamper(items, e.c.LIndex(ctx, e.receiptsKey(o), 1).Val())
			e.c.Del(ctx, e.receiptsKey(u))
			for _, it := range items {
				e.c.RPush(ctx, e.receiptsKey(u), it)
			}
			if err := atkVerify(t, e.s, u); err == nil {
				t.Errorf("receipts edited (%s) still verify", tc.name)
			}
		})
	}
}

// TestAttackRedisBackdatedReceiptPrefix backdates the unauthenticated time
// prefix of a live user's recent receipt items (the purge reads it) by
// four years: the store's purge then removes them, but the anchor it
// leaves carries the receipts' sealed time, so VerifyChain reports
// receipts removed before their retention ended.
func TestAttackRedisBackdatedReceiptPrefix(t *testing.T) {
	e := atkOpen(t, rs.Options{})
	ctx := context.Background()
	const u = "backdated"
	for _, ch := range []consent.Change{consent.DeclareTag(u, "interest:a"), consent.RefuseChannel(u, "sms"), consent.SetPersonalization(u, false)} {
		e.apply(t, ch)
	}
	items := e.c.LRange(ctx, e.receiptsKey(u), 0, -1).Val()
	old := strconv.FormatInt(time.Now().Add(-4*365*24*time.Hour).UnixMilli(), 10)
	for i := 0; i < 2; i++ {
		_, rest, _ := strings.Cut(items[i], " ")
		e.c.LSet(ctx, e.receiptsKey(u), int64(i), old+" "+rest)
	}
	e.c.ZAdd(ctx, e.tag(u)+"rx", goredis.Z{Score: float64(time.Now().Add(-4 * 365 * 24 * time.Hour).UnixMilli()), Member: u})
	n, err := e.s.PurgeExpired(ctx, time.Now())
	t.Logf("purge removed %d (%v)", n, err)
	if n > 0 {
		if err := atkVerify(t, e.s, u); err == nil {
			t.Errorf("recent receipts purged through a backdated prefix, and the chain verifies")
		}
	}
}
