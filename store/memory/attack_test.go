package memory_test

// Attacks on the embedded store's erasure and restriction promises: after
// an erasure and a compaction nothing of the user is left in any file of
// the data directory nor in what the store reads back, whatever races
// with the erasure; restricted users' events are not stored or read.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	"github.com/recguard/recguard/tags"
)

var atkMemKey = consent.ChainKey("memory attack test chain key")

var atkMemMarkers = []string{"zzmskiing", "zzmdiabetes", "zzminferred", "zzmreason", "zzmref", "zzmitem", "zzmrace"}

func atkMemOpen(t *testing.T, dir string, opts memory.Options) *memory.Store {
	t.Helper()
	opts.Dir, opts.ChainKey = dir, atkMemKey
	if opts.Shards == 0 && dir == "" {
		opts.Shards = 4
	}
	s, err := memory.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func atkMemApply(t *testing.T, s store.Store, ch consent.Change) store.Applied {
	t.Helper()
	a, err := s.Apply(context.Background(), ch)
	if err != nil {
		t.Fatalf("Apply(%s %s): %v", ch.Op, ch.UserID, err)
	}
	return a
}

// atkDir returns every file of dir (recursively), concatenated.
func atkDir(t *testing.T, dir string) []byte {
	t.Helper()
	var b bytes.Buffer
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b.WriteString("FILE " + p + "\n")
		b.Write(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func atkMemHits(b []byte) []string {
	var out []string
	for _, m := range atkMemMarkers {
		if bytes.Contains(b, []byte(m)) {
			out = append(out, m)
		}
	}
	return out
}

func atkMemVictim(t *testing.T, s *memory.Store, u string) {
	t.Helper()
	g := consent.GrantSensitive(u, tags.MedicalHealth, consent.PurposePersonalization).Because("zzmreason-grant")
	g.Ref = "zzmref-1"
	for _, ch := range []consent.Change{
		g,
		consent.DeclareTag(u, "interest:zzmskiing"),
		consent.DeclareTag(u, "medical_health:zzmdiabetes"),
		consent.InferTag(u, "interest:zzminferred"),
		consent.DeleteTag(u, "interest:zzmskiing"),
		consent.RefuseChannel(u, "sms").Because("zzmreason-sms"),
	} {
		atkMemApply(t, s, ch)
	}
	if err := s.AppendOutcomes(context.Background(), []string{u}, [][]byte{[]byte(`{"item":"zzmitem-1"}`)}); err != nil {
		t.Fatal(err)
	}
}

// atkMemCheckReads checks that nothing read back about u carries content.
func atkMemCheckReads(t *testing.T, s *memory.Store, u string) {
	t.Helper()
	ctx := context.Background()
	rec, err := s.Get(ctx, u)
	if err != nil || !rec.State.Erased || len(rec.Tags.Entries)+len(rec.Tags.Suppressed) != 0 {
		t.Errorf("Get = %+v, %v", rec, err)
	}
	rcs, err := s.Receipts(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rcs {
		if !r.Redacted || r.Subject != "" || r.Reason != "" || r.Ref != "" || r.Purpose != "" || r.Old != "" || r.New != "" || r.Salt != "" {
			t.Errorf("receipt seq %d not redacted: %+v", r.Seq, r)
		}
	}
	set, _ := s.Settings(ctx)
	if err := consent.VerifyChain(rcs, consent.HeadOf(rec, &set, time.Now()), atkMemKey); err != nil {
		t.Errorf("redacted chain: %v", err)
	}
	evs, err := s.ReadChangelog(ctx, store.ShardOf(u, s.Shards()), "", 10000, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Record == nil || ev.Record.UserID != u {
			continue
		}
		if !ev.Shredded && !ev.Record.State.Erased {
			t.Errorf("entry v%d read with content: %+v", ev.Record.Version, ev.Record)
		}
		if len(ev.Record.Tags.Entries) > 0 || ev.Prev != nil || !ev.Receipt.Redacted {
			t.Errorf("entry v%d holds content: tags %v prev %v receipt %+v", ev.Record.Version, ev.Record.Tags, ev.Prev, ev.Receipt)
		}
	}
	recs, err := s.GetMany(ctx, []string{u})
	if err != nil || !recs[0].State.Erased {
		t.Errorf("GetMany = %+v, %v", recs, err)
	}
	if err := s.ReadOutcomes(ctx, func(e []byte) error {
		if hit := atkMemHits(e); len(hit) > 0 {
			t.Errorf("outcome event of the erased user read: %s", e)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, consent.InferTag(u, "interest:zzminferred")); !errors.Is(err, consent.ErrForbidden) {
		t.Errorf("InferTag on the tombstone: %v, want ErrForbidden", err)
	}
}

// TestAttackMemoryEraseCompactGrepDir erases a user with a rich history,
// with API keys and rights requests in the directory too, compacts, and
// reads every file of the data directory: nothing of the user's content
// may be left, before and after reopening.
func TestAttackMemoryEraseCompactGrepDir(t *testing.T) {
	dir := t.TempDir()
	s := atkMemOpen(t, dir, memory.Options{Shards: 4, CompactDelay: -1})
	ctx := context.Background()
	const u = "mem-victim"
	atkMemVictim(t, s, u)
	atkMemApply(t, s, consent.DeclareTag("mem-bystander", "interest:keepme"))
	if err := s.PutKey(ctx, store.APIKey{ID: "k1", Role: "admin", Hash: "00", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := s.LogRightsRequest(ctx, store.RightsRequest{Kind: "erase", Received: time.Now(), Handled: time.Now(), Outcome: "fulfilled", Status: 200}); err != nil {
		t.Fatal(err)
	}
	if len(atkMemHits(atkDir(t, dir))) == 0 {
		t.Fatal("test bug: nothing of the victim in the directory before the erasure")
	}
	er := consent.Erase(u).Because("zzmreason-erase")
	er.Ref = "zzmref-erase"
	atkMemApply(t, s, er)
	atkMemCheckReads(t, s, u)
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if hit := atkMemHits(atkDir(t, dir)); len(hit) > 0 {
		t.Errorf("after erase and Compact the data directory holds %v", hit)
	}
	if !bytes.Contains(atkDir(t, dir), []byte("interest:keepme")) {
		t.Errorf("the bystander's data went too")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = atkMemOpen(t, dir, memory.Options{CompactDelay: -1})
	atkMemCheckReads(t, s, u)
	if hit := atkMemHits(atkDir(t, dir)); len(hit) > 0 {
		t.Errorf("after reopening the data directory holds %v", hit)
	}
}

// TestAttackMemoryRaceEraseVsWrites races an erasure against outcome
// appends and pipeline inferences (and compactions): afterwards the user is
// a tombstone, nothing of theirs is read back, and after a final compaction
// nothing is in the directory.
func TestAttackMemoryRaceEraseVsWrites(t *testing.T) {
	for round := 0; round < 5; round++ {
		dir := t.TempDir()
		s := atkMemOpen(t, dir, memory.Options{Shards: 2, CompactDelay: time.Millisecond, NoSync: true})
		ctx := context.Background()
		const u = "mem-racer"
		atkMemApply(t, s, consent.DeclareTag(u, "interest:zzmrace-seed"))
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < 2; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if w == 0 {
						_ = s.AppendOutcomes(ctx, []string{u}, [][]byte{[]byte(`{"item":"zzmrace-` + strconv.Itoa(i) + `"}`)})
					} else {
						_, _ = s.Apply(ctx, consent.InferTag(u, tags.Tag("interest:zzmrace"+strconv.Itoa(i))))
					}
				}
			}()
		}
		time.Sleep(time.Duration(5+5*round) * time.Millisecond)
		atkMemApply(t, s, consent.Erase(u))
		time.Sleep(10 * time.Millisecond)
		close(stop)
		wg.Wait()
		atkMemCheckReads(t, s, u)
		n := 0
		_ = s.ReadOutcomes(ctx, func([]byte) error { n++; return nil })
		if n != 0 {
			t.Errorf("round %d: %d events read after the erasure", round, n)
		}
		if err := s.Compact(ctx); err != nil {
			t.Fatal(err)
		}
		if hit := atkMemHits(atkDir(t, dir)); len(hit) > 0 {
			t.Errorf("round %d: after the race and Compact the directory holds %v", round, hit)
		}
	}
}

// TestAttackMemoryRestrict: a restricted user's events are neither stored
// nor read, concurrent appends included once Restrict returned, and no
// pipeline lifts the restriction.
func TestAttackMemoryRestrict(t *testing.T) {
	s := atkMemOpen(t, "", memory.Options{})
	ctx := context.Background()
	const u = "mem-restricted"
	atkMemApply(t, s, consent.DeclareTag(u, "interest:a"))
	if err := s.AppendOutcomes(ctx, []string{u}, [][]byte{[]byte(`{"item":"before"}`)}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = s.AppendOutcomes(ctx, []string{u}, [][]byte{[]byte(`{"item":"racing"}`)})
		}
	}()
	time.Sleep(5 * time.Millisecond)
	atkMemApply(t, s, consent.Restrict(u).By(consent.ActorAdmin, consent.SurfaceAdminConsole))
	if err := s.AppendOutcomes(ctx, []string{u}, [][]byte{[]byte(`{"item":"after"}`)}); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if err := s.ReadOutcomes(ctx, func(e []byte) error {
		t.Errorf("event of a restricted user read: %s", e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, consent.InferTag(u, "interest:b")); !errors.Is(err, consent.ErrInferenceRefused) {
		t.Errorf("inference on a restricted user: %v", err)
	}
	if _, err := s.Apply(ctx, consent.Unrestrict(u).By(consent.ActorSystem, consent.SurfacePipeline)); err == nil {
		t.Errorf("the pipeline lifted the restriction")
	}
	// Lifting it (the user) makes the events kept readable again, but
	// none appended while restricted.
	atkMemApply(t, s, consent.Unrestrict(u))
	var got []string
	_ = s.ReadOutcomes(ctx, func(e []byte) error { got = append(got, string(e)); return nil })
	for _, e := range got {
		if e == `{"item":"after"}` {
			t.Errorf("an event appended while restricted was stored")
		}
	}
}
