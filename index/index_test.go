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
	tagPool     = []tags.Tag{"interest:ski", "interest:golf", "region:sh", "region:bj", "device:ios", "medical_health:diabetes", "banned:x"}
	channelPool = []string{"push", "sms", "email"}
)

// randomChange returns a plausible change for user u (it may be refused
// by the store; that is part of the test).
func randomChange(r *rand.Rand, u string) consent.Change {
	t := tagPool[r.IntN(len(tagPool))]
	switch r.IntN(12) {
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
	case 5:
		return consent.GrantSensitive(u, tags.MedicalHealth, consent.PurposePersonalization)
	case 6:
		return consent.WithdrawSensitive(u, tags.MedicalHealth)
	case 7:
		return consent.DeleteTag(u, t)
	case 8:
		if r.IntN(10) == 0 {
			return consent.Erase(u)
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
		switch r.IntN(8) {
		case 0:
			return &tags.Segment{Op: tags.OpAll}
		case 1:
			a = tags.Atom{Kind: tags.AtomPersonalizationOff}
		case 2:
			a = tags.Atom{Kind: tags.AtomRefused, Channel: channelPool[r.IntN(len(channelPool))]}
		case 3:
			a = tags.Atom{Kind: tags.AtomMinor}
		case 4:
			a = tags.Atom{Kind: tags.AtomSensitive, Category: tags.MedicalHealth}
		case 5:
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

// bruteForce evaluates the audience straight from the store's records with
// the consent model's own rules, user by user.
func bruteForce(t *testing.T, st store.Store, users []string, seg *tags.Segment, channel string, targeted bool) []string {
	t.Helper()
	ctx := context.Background()
	set, err := st.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if set.Suspended {
		return nil
	}
	var out []string
	for _, u := range users {
		rec, err := st.Get(ctx, u)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		s := rec.State
		usable := map[tags.Tag]bool{}
		for _, tg := range consent.UsableTags(s, rec.Tags, &set) {
			usable[tg] = true
		}
		match := seg.Eval(func(a tags.Atom) bool {
			switch a.Kind {
			case tags.AtomTag:
				// Usable now; erasure and the opt-out are applied below.
				return usable[a.Tag]
			case tags.AtomPersonalizationOff:
				return s.PersonalizationOff
			case tags.AtomGuardian:
				return s.Minor && s.GuardianOK(&set)
			case tags.AtomRefused:
				return s.ChannelRefused(a.Channel)
			case tags.AtomSensitive:
				return s.SensitiveOK(a.Category, &set)
			case tags.AtomMinor:
				return s.Minor
			case tags.AtomErased:
				return s.Erased
			}
			return false
		})
		if !match || s.ChannelRefused(channel) || s.Erased {
			continue
		}
		if (targeted || seg.UsesPersonalData()) && (s.PersonalizationOff || !s.GuardianOK(&set)) {
			continue
		}
		out = append(out, u)
	}
	sort.Strings(out)
	return out
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

// The audience equals a brute-force evaluation over the store's records,
// for random users, changes and segments, including while changes are
// applied concurrently (checked at each quiescent point).
func TestAudienceMatchesBruteForce(t *testing.T) {
	ctx := context.Background()
	st := redisStore(t, rs.Options{Shards: 4})
	set, _ := st.Settings(ctx)
	set.Taxonomy["banned"] = tags.Namespace{Prohibited: false}
	if _, _, err := st.SetSettings(ctx, set, consent.ActorAdmin, consent.SurfaceAdminConsole); err != nil {
		t.Fatal(err)
	}
	x := index.New(st.Shards(), consent.Settings{})
	r := rand.New(rand.NewPCG(1, 2))
	users := make([]string, 120)
	for i := range users {
		users[i] = fmt.Sprintf("u%03d", i)
	}
	for round := 0; round < 6; round++ {
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
		if round == 3 {
			// Settings change under the index: a namespace becomes
			// prohibited, a policy version moves (consents lapse).
			set, _ := st.Settings(ctx)
			set.Taxonomy["banned"] = tags.Namespace{Prohibited: true}
			set.Policies[consent.PurposeGuardian] = 2
			if _, _, err := st.SetSettings(ctx, set, consent.ActorAdmin, consent.SurfaceAdminConsole); err != nil {
				t.Fatal(err)
			}
		}
		follow(t, st, x)
		for i := 0; i < 40; i++ {
			seg := randomSegment(r, 3)
			ch := channelPool[r.IntN(len(channelPool))]
			targeted := r.IntN(2) == 0
			got := audienceIDs(t, x, seg, ch, targeted)
			want := bruteForce(t, st, users, seg, ch, targeted)
			if !equalIDs(got, want) {
				t.Fatalf("round %d: Audience(%s, %s, targeted=%t)\n got  %d %v\n want %d %v", round, seg, ch, targeted, len(got), got, len(want), want)
			}
		}
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
