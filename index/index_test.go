package index_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/index"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/store"
	rs "github.com/recguard/recguard/store/redis"
	"github.com/recguard/recguard/tags"
)

func redisStore(t *testing.T, opts rs.Options) *rs.Store {
	t.Helper()
	c := redistest.Client(t)
	if opts.Prefix == "" {
		opts.Prefix = redistest.Prefix(t, c)
	}
	opts.Init = true
	s, err := rs.New(context.Background(), c, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var (
	tagPool      = []tags.Tag{"interest:ski", "interest:golf", "region:sh", "region:bj", "device:ios", "medical_health:diabetes", "religion:buddhism", "banned:x"}
	channelPool  = []string{"push", "sms", "email"}
	categoryPool = []tags.Category{tags.MedicalHealth, tags.Religion}
	// purposePool are the purposes sensitive consents are given for: only
	// push counts in an audience. "ads" is refused by stores whose settings
	// give it no policy version (a refusal the tests accept).
	purposePool = []string{consent.PurposePush, consent.PurposePersonalization, "ads"}
)

// randomChange returns a plausible change for user u (it may be refused
// by the store; that is part of the test).
func randomChange(r *rand.Rand, u string) consent.Change {
	t := tagPool[r.IntN(len(tagPool))]
	switch r.IntN(14) {
	case 0:
		return consent.SetPersonalization(u, r.IntN(2) == 0)
	case 1:
		return consent.RefuseChannel(u, channelPool[r.IntN(len(channelPool))])
	case 2:
		return consent.AllowChannel(u, channelPool[r.IntN(len(channelPool))])
	case 3:
		return consent.SetMinor(u, r.IntN(4) == 0)
	case 4:
		return consent.SetGuardian(u, r.IntN(2) == 0)
	case 5, 6:
		ch := consent.GrantSensitive(u, categoryPool[r.IntN(len(categoryPool))], purposePool[r.IntN(len(purposePool))])
		if r.IntN(4) == 0 {
			ch = ch.By(consent.ActorGuardian, consent.SurfaceAppSettings)
		}
		return ch
	case 7:
		return consent.WithdrawSensitive(u, categoryPool[r.IntN(len(categoryPool))])
	case 8:
		return consent.DeleteTag(u, t)
	case 9:
		if r.IntN(10) == 0 {
			return consent.Erase(u)
		}
		if r.IntN(12) == 0 {
			return consent.Restrict(u)
		}
		if r.IntN(8) == 0 {
			return consent.Unrestrict(u)
		}
		if r.IntN(3) == 0 {
			return consent.RedeclareTag(u, t)
		}
		return consent.DeclareTag(u, t)
	default:
		return consent.InferTag(u, t)
	}
}

// randomSegment builds a random expression over the atoms in play.
func randomSegment(r *rand.Rand, depth int) *tags.Segment {
	if depth == 0 || r.IntN(3) == 0 {
		var a tags.Atom
		switch r.IntN(9) {
		case 0:
			return &tags.Segment{Op: tags.OpAll}
		case 1:
			a = tags.Atom{Kind: tags.AtomPersonalizationOff}
		case 2:
			a = tags.Atom{Kind: tags.AtomRefused, Channel: channelPool[r.IntN(len(channelPool))]}
		case 3:
			a = tags.Atom{Kind: tags.AtomMinor}
		case 4, 5:
			a = tags.Atom{Kind: tags.AtomSensitive, Category: categoryPool[r.IntN(len(categoryPool))]}
		case 6:
			a = tags.Atom{Kind: tags.AtomGuardian}
		default:
			a = tags.Atom{Kind: tags.AtomTag, Tag: tagPool[r.IntN(len(tagPool))]}
		}
		return &tags.Segment{Op: tags.OpAtom, Atom: a}
	}
	switch r.IntN(3) {
	case 0:
		return &tags.Segment{Op: tags.OpNot, X: randomSegment(r, depth-1)}
	case 1:
		return &tags.Segment{Op: tags.OpAnd, X: randomSegment(r, depth-1), Y: randomSegment(r, depth-1)}
	}
	return &tags.Segment{Op: tags.OpOr, X: randomSegment(r, depth-1), Y: randomSegment(r, depth-1)}
}

// snapshot is the store's settings and the records of some users, read
// once, for oracle.
type snapshot struct {
	set  consent.Settings
	ids  []string
	recs []consent.Record
}

// readSnapshot reads the settings and the records of users (those the store
// has no record of are left out).
func readSnapshot(t *testing.T, st store.Store, users []string) *snapshot {
	t.Helper()
	ctx := context.Background()
	set, err := st.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sn := &snapshot{set: set}
	for _, u := range users {
		rec, err := st.Get(ctx, u)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		sn.ids = append(sn.ids, u)
		sn.recs = append(sn.recs, rec)
	}
	return sn
}

// oracle is the audience by the consent model's own definition, user by
// user (consent.InPushAudience), sorted, less users who restricted
// processing (Art. 23: in no audience; consent.InPushAudience does not say
// so yet).
func (sn *snapshot) oracle(seg *tags.Segment, channel string, targeted bool) []string {
	var out []string
	for i := range sn.recs {
		if !sn.recs[i].State.Restricted && consent.InPushAudience(seg, &sn.recs[i], &sn.set, channel, targeted) {
			out = append(out, sn.ids[i])
		}
	}
	sort.Strings(out)
	return out
}

// bruteForce evaluates the audience straight from the store's records with
// the consent model's rules, user by user.
func bruteForce(t *testing.T, st store.Store, users []string, seg *tags.Segment, channel string, targeted bool) []string {
	t.Helper()
	return readSnapshot(t, st, users).oracle(seg, channel, targeted)
}

func audienceIDs(t *testing.T, x *index.Index, seg *tags.Segment, channel string, targeted bool) []string {
	t.Helper()
	a, err := x.Audience(seg, channel, targeted)
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	var cur uint32
	for {
		ids, next := a.Page(cur, 7)
		all = append(all, ids...)
		if next == 0 {
			break
		}
		cur = next
	}
	if uint64(len(all)) != a.Count() {
		t.Fatalf("paging %s gave %d users, Count says %d", seg, len(all), a.Count())
	}
	sort.Strings(all)
	return all
}

// follow feeds x from every changelog until it has reached each log's tail.
func follow(t *testing.T, st store.Store, x *index.Index) {
	t.Helper()
	out, rebuilt, err := index.CatchUp(context.Background(), st, x)
	if err != nil || rebuilt || out != x {
		t.Fatalf("CatchUp: rebuilt %t, err %v", rebuilt, err)
	}
}

func equalIDs(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// settingsSteps are the settings changes TestAudienceMatchesBruteForce
// makes under the index, one per round after the first: every purpose's
// policy moves at some point, with and without KeepOnBump, and a
// namespace becomes prohibited.
var settingsSteps = []func(s *consent.Settings){
	func(s *consent.Settings) { s.Policies[consent.PurposePush]++ },
	func(s *consent.Settings) {
		s.KeepOnBump = []string{consent.PurposePush}
		s.Policies[consent.PurposePush]++
		s.Policies[consent.PurposePersonalization]++
	},
	func(s *consent.Settings) {
		s.Taxonomy["banned"] = tags.Namespace{Prohibited: true}
		s.Policies[consent.PurposeGuardian]++
		s.Policies["ads"]++
	},
	func(s *consent.Settings) {
		// Push no longer keeps consents: those kept over the last bump
		// lapse now.
		s.KeepOnBump = []string{consent.PurposeGuardian, consent.PurposePersonalization}
		s.Policies[consent.PurposeGuardian]++
	},
	func(s *consent.Settings) {
		s.Policies[consent.PurposePush]++
		s.Policies[consent.PurposePersonalization]++
	},
	func(s *consent.Settings) {
		s.KeepOnBump = nil
		s.Policies[consent.PurposeGuardian]++
		s.Policies[consent.PurposePush]++
	},
	func(s *consent.Settings) { s.Suspended = true },
	func(s *consent.Settings) { s.Suspended = false },
}

// The audience equals the consent model's own definition
// (consent.InPushAudience) over the store's records, for random users,
// changes and segments, while changes are applied concurrently (checked at
// each quiescent point) and while every policy version moves, with and
// without KeepOnBump, with sensitive consents given for several purposes
// (only push counts) and the kill switch on and off.
func TestAudienceMatchesBruteForce(t *testing.T) {
	ctx := context.Background()
	st := redisStore(t, rs.Options{Shards: 4})
	set, _ := st.Settings(ctx)
	set.Taxonomy["banned"] = tags.Namespace{Prohibited: false}
	set.Policies["ads"] = 1
	if _, _, err := st.SetSettings(ctx, set, consent.ActorAdmin, consent.SurfaceAdminConsole); err != nil {
		t.Fatal(err)
	}
	x := index.New(st.Shards(), consent.Settings{})
	r := rand.New(rand.NewPCG(1, 2))
	users := make([]string, 120)
	for i := range users {
		users[i] = fmt.Sprintf("u%03d", i)
	}
	// sensitiveIn counts, over the checks, users in an audience whose
	// segment names a sensitive atom or tag: the test must see some.
	sensitiveIn := 0
	for round := 0; round <= len(settingsSteps); round++ {
		// Concurrent writers.
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			seed := r.Uint64()
			go func() {
				defer wg.Done()
				rr := rand.New(rand.NewPCG(seed, 7))
				for i := 0; i < 150; i++ {
					st.Apply(ctx, randomChange(rr, users[rr.IntN(len(users))])) // refusals are fine
				}
			}()
		}
		// The index follows while they write.
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; i < 20; i++ {
				index.CatchUp(ctx, st, x)
			}
		}()
		wg.Wait()
		<-done
		if round > 0 {
			// Settings change under the index.
			set, _ := st.Settings(ctx)
			settingsSteps[round-1](&set)
			if _, _, err := st.SetSettings(ctx, set, consent.ActorAdmin, consent.SurfaceAdminConsole); err != nil {
				t.Fatal(err)
			}
		}
		follow(t, st, x)
		sn := readSnapshot(t, st, users)
		if got := x.Settings(); got.Version != sn.set.Version {
			t.Fatalf("round %d: index at settings v%d, store at v%d", round, got.Version, sn.set.Version)
		}
		for i := 0; i < 60; i++ {
			seg := randomSegment(r, 3)
			switch i {
			case 0:
				seg = tags.MustParseSegment("sensitive:medical_health | sensitive:religion")
			case 1:
				seg = tags.MustParseSegment("medical_health:diabetes | religion:buddhism")
			case 2:
				seg = tags.MustParseSegment("(medical_health:diabetes | religion:buddhism) & !interest:ski")
			}
			ch := channelPool[r.IntN(len(channelPool))]
			targeted := r.IntN(2) == 0
			got := audienceIDs(t, x, seg, ch, targeted)
			want := sn.oracle(seg, ch, targeted)
			if !equalIDs(got, want) {
				t.Fatalf("round %d: Audience(%s, %s, targeted=%t)\n got  %d %v\n want %d %v", round, seg, ch, targeted, len(got), got, len(want), want)
			}
			if usesSensitive(seg, &sn.set) {
				sensitiveIn += len(got)
			}
		}
	}
	t.Logf("%d users in audiences of segments with sensitive atoms or tags", sensitiveIn)
	if sensitiveIn < 50 {
		t.Fatalf("only %d users matched segments with sensitive atoms or tags: the test proves little", sensitiveIn)
	}
	// Checkpoint + replay equals a rebuild from scratch.
	data, err := x.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		st.Apply(ctx, randomChange(r, users[r.IntN(len(users))]))
	}
	restored, err := index.Unmarshal(data)
	if err != nil {
		t.Fatal(err)
	}
	follow(t, st, restored)
	rebuilt, err := index.Build(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if !restored.Equal(rebuilt) {
		t.Fatal("checkpoint + replay differs from a rebuild from scratch")
	}
	follow(t, st, x)
	if !x.Equal(rebuilt) {
		t.Fatal("the live index differs from a rebuild from scratch")
	}
}

// usesSensitive reports whether seg names a sensitive:<category> atom or a
// tag of a sensitive namespace.
func usesSensitive(seg *tags.Segment, set *consent.Settings) bool {
	for _, a := range seg.Atoms() {
		if a.Kind == tags.AtomSensitive || a.Kind == tags.AtomTag && set.Taxonomy.Lookup(a.Tag).Sensitive != "" {
			return true
		}
	}
	return false
}

// A checkpoint older than the changelog's trim horizon cannot be replayed:
// CatchUp rebuilds from scratch and the result equals a fresh build.
func TestTrimmedChangelogForcesRebuild(t *testing.T) {
	ctx := context.Background()
	st := redisStore(t, rs.Options{Shards: 2, ChangelogMaxLen: 10})
	for i := 0; i < 20; i++ {
		st.Apply(ctx, consent.DeclareTag(fmt.Sprintf("t%d", i), "interest:ski"))
	}
	x, err := index.Build(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := x.MarshalBinary()
	for i := 0; i < 400; i++ {
		st.Apply(ctx, consent.SetPersonalization(fmt.Sprintf("t%d", i%30), (i/30)%2 == 1))
	}
	restored, _ := index.Unmarshal(old)
	got, rebuilt, err := index.CatchUp(ctx, st, restored)
	if err != nil || !rebuilt {
		t.Fatalf("CatchUp from a trimmed position: rebuilt %t, err %v; want a rebuild", rebuilt, err)
	}
	fresh, _ := index.Build(ctx, st)
	if !got.Equal(fresh) {
		t.Fatal("the rebuilt index differs from a fresh build")
	}
	n, err := got.Count(tags.MustParseSegment("interest:ski"), "push", true)
	if err != nil {
		t.Fatal(err)
	}
	want := len(bruteForce(t, st, userRange("t", 30), tags.MustParseSegment("interest:ski"), "push", true))
	if int(n) != want {
		t.Fatalf("count after rebuild %d, brute force %d", n, want)
	}
}

func userRange(p string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", p, i)
	}
	return out
}

func TestCorruptCheckpoint(t *testing.T) {
	x := index.New(2, consent.DefaultSettings())
	data, _ := x.MarshalBinary()
	for _, bad := range [][]byte{nil, []byte("nope"), data[:len(data)-1], append(append([]byte{}, data...), 0)} {
		if _, err := index.Unmarshal(bad); !errors.Is(err, index.ErrCorruptCheckpoint) {
			t.Errorf("Unmarshal(%d bytes) = %v, want ErrCorruptCheckpoint", len(bad), err)
		}
	}
}
