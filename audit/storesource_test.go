package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/audit"
	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	rs "github.com/recguard/recguard/store/redis"
)

// Events appended to a store's outcome log come back through StoreSource,
// every one, decoded; a malformed one is a LineError the caller can skip.
func TestStoreSource(t *testing.T) {
	ctx := context.Background()
	st, err := memory.Open(ctx, memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	var users []string
	var lines [][]byte
	for i := 0; i < 25; i++ {
		price := float64(100 + i)
		ev := audit.Event{UserID: "u" + string(rune('a'+i%5)), Item: "sku1", Time: at.Add(time.Duration(i) * time.Minute), Mode: audit.ModePersonalized, Price: &price}
		b, _ := json.Marshal(ev)
		users, lines = append(users, ev.UserID), append(lines, b)
	}
	users, lines = append(users, "ua"), append(lines, []byte(`{"user":"ua","nonsense":1}`))
	if err := st.AppendOutcomes(ctx, users, lines); err != nil {
		t.Fatal(err)
	}
	src := audit.StoreSource(ctx, st)
	n, bad := 0, 0
	var sum float64
	for {
		ev, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var le *audit.LineError
		if errors.As(err, &le) {
			bad++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		sum += *ev.Price
	}
	if n != 25 || bad != 1 || sum != 25*100+300 {
		t.Fatalf("read %d events (price sum %v) and %d malformed; want 25 (sum %v) and 1", n, sum, bad, 25*100+300)
	}
}

// undecodable are stored outcome events that cannot be audited, each
// with what makes it so.
var undecodable = [][]byte{
	[]byte(`{"user":"ua","nonsense":1}`), // unknown field
	[]byte(``),                           // empty
	[]byte("  \t "),                      // blank
	[]byte("\x00\xff\xfe garbage\n{\"user\":\"ub\"}\n"),                                                    // binary, with newlines
	[]byte(`{"user":"uc","item":"sku1"}`),                                                                  // no time, no mode
	[]byte(`{"user":"ud","item":"sku1","time":"2026-11-01T10:00:00Z","mode":"personalized","price":"12"}`), // a string price
	[]byte(`[1,2,3]`),
	append(append([]byte(`{"user":"ue","item":"`), bytes.Repeat([]byte("x"), audit.MaxLineBytes)...), `","time":"2026-11-01T10:00:00Z","mode":"personalized"}`...), // too long
}

// goodEvents returns n valid outcome events (prices 100, 101, ...), one of
// them pretty-printed over several lines, which is still one event.
func goodEvents(t *testing.T, n int) (users []string, events [][]byte) {
	t.Helper()
	at := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		price := float64(100 + i)
		ev := audit.Event{UserID: "u" + string(rune('a'+i%5)), Item: "sku1", Time: at.Add(time.Duration(i) * time.Minute), Mode: audit.ModePersonalized, Price: &price}
		var b []byte
		var err error
		if i == 3 {
			b, err = json.MarshalIndent(ev, "", "  ")
		} else {
			b, err = json.Marshal(ev)
		}
		if err != nil {
			t.Fatal(err)
		}
		users, events = append(users, ev.UserID), append(events, b)
	}
	return users, events
}

// ordinals returns the 1-based places (in the store's read order) of the
// stored events for which bad is true.
func ordinals(t *testing.T, ol store.OutcomeLog, bad func([]byte) bool) []int64 {
	t.Helper()
	var out []int64
	var n int64
	if err := ol.ReadOutcomes(context.Background(), func(e []byte) error {
		n++
		if bad(e) {
			out = append(out, n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func isUndecodable(e []byte) bool {
	for _, u := range undecodable {
		if bytes.Equal(e, u) {
			return true
		}
	}
	return false
}

// auditStore runs a one-group audit (mean price) over the store's events.
func auditStore(ctx context.Context, st store.Store) (*audit.Report, error) {
	spec := audit.Spec{
		Name:         "store",
		Groups:       []audit.GroupSpec{{Name: "all", Segment: "*"}, {Name: "others", Segment: "!*"}},
		Reference:    "all",
		MinGroupSize: 1,
		Metrics:      []audit.MetricSpec{{Name: "price", Kind: audit.Mean, Field: "price"}},
	}
	return audit.Run(ctx, spec, audit.StoreSource(ctx, st.(store.OutcomeLog)), audit.StoreFacts(st), audit.Options{})
}

// checkSkipped checks a report of 25 good events and the undecodable ones:
// every good one used, every bad one skipped, counted and listed with its
// place in the store's read order.
func checkSkipped(t *testing.T, rep *audit.Report, want []int64) {
	t.Helper()
	if rep.Used != 25 || rep.Skipped != int64(len(want)) {
		t.Fatalf("report used %d events, skipped %d; want 25 and %d", rep.Used, rep.Skipped, len(want))
	}
	if len(rep.Problems) != len(want) {
		t.Fatalf("report lists %d problems, want %d: %+v", len(rep.Problems), len(want), rep.Problems)
	}
	for i, p := range rep.Problems {
		if p.File != "store" || p.Line != want[i] || p.Reason == "" {
			t.Errorf("problem %d = %+v, want store:%d with a reason", i, p, want[i])
		}
	}
	g := rep.Groups[0]
	if len(g.Metrics) != 1 || g.Metrics[0].N != 25 || math.Abs(g.Metrics[0].Value-112) > 1e-9 {
		t.Fatalf("group %+v: want the mean price of the 25 good events (112)", g)
	}
}

// Undecodable events in the store are skipped and counted, never a crash,
// never the end of the read, never a silently short report; an event
// pretty-printed over several lines is one event.
func TestStoreSourceSkipsUndecodable(t *testing.T) {
	ctx := context.Background()
	st, err := memory.Open(ctx, memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	users, events := goodEvents(t, 25)
	for i, u := range undecodable {
		// Interleaved with the good ones, on every shard.
		at := (i * 3) % len(users)
		users = append(users[:at], append([]string{"u" + string(rune('a'+i%5))}, users[at:]...)...)
		events = append(events[:at], append([][]byte{u}, events[at:]...)...)
	}
	if err := st.AppendOutcomes(ctx, users, events); err != nil {
		t.Fatal(err)
	}
	rep, err := auditStore(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	checkSkipped(t, rep, ordinals(t, st, isUndecodable))
}

// The same on Redis, with stream entries damaged behind the store's back:
// an entry without the event field, and binary garbage in it.
func TestStoreSourceRedisDamagedEntries(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t)
	prefix := redistest.Prefix(t, c)
	st, err := rs.New(ctx, c, rs.Options{Prefix: prefix, Shards: 2, Init: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	users, events := goodEvents(t, 25)
	if err := st.AppendOutcomes(ctx, users[:10], events[:10]); err != nil {
		t.Fatal(err)
	}
	for sh := 0; sh < 2; sh++ {
		key := prefix + ":{" + strconv.Itoa(sh) + "}:outcomes"
		for _, vals := range [][]any{{"x", "no event field"}, {"e", "\xff\x00{\"user\":"}, {"e", ""}} {
			if err := c.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: vals}).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.AppendOutcomes(ctx, users[10:], events[10:]); err != nil {
		t.Fatal(err)
	}
	rep, err := auditStore(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	checkSkipped(t, rep, ordinals(t, st, func(e []byte) bool { return !json.Valid(e) }))
	if rep.Skipped != 6 {
		t.Fatalf("skipped %d, want the 6 damaged entries", rep.Skipped)
	}
}

// A store that fails while the events are read fails the audit: no report
// that looks complete.
func TestStoreSourceStoreFails(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t)
	st, err := rs.New(ctx, c, rs.Options{Prefix: redistest.Prefix(t, c), Shards: 2, Init: true})
	if err != nil {
		t.Fatal(err)
	}
	users, events := goodEvents(t, 5)
	if err := st.AppendOutcomes(ctx, users, events); err != nil {
		t.Fatal(err)
	}
	st.Close()
	rep, err := auditStore(ctx, st)
	if err == nil || !errors.Is(err, store.ErrClosed) {
		t.Fatalf("audit over a closed store: report %v, err %v; want an error wrapping store.ErrClosed", rep != nil, err)
	}
}

// Cancelling the context ends the read even when Next is no longer called,
// and a caller still calling Next gets the cancellation, not io.EOF.
func TestStoreSourceCancel(t *testing.T) {
	ctx := context.Background()
	st, err := memory.Open(ctx, memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	users, events := goodEvents(t, 25)
	for len(users) < 5000 {
		users, events = append(users, users[:25]...), append(events, events[:25]...)
	}
	if err := st.AppendOutcomes(ctx, users, events); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	src := audit.StoreSource(cctx, st)
	if _, err := src.Next(); err != nil {
		t.Fatal(err)
	}
	cancel()
	n := 1
	for {
		_, err := src.Next()
		if err == nil {
			n++
			continue
		}
		if errors.Is(err, io.EOF) || !errors.Is(err, context.Canceled) {
			t.Fatalf("after %d events: %v; want context.Canceled", n, err)
		}
		break
	}
	if n >= 5000 {
		t.Fatal("the read went on to the end after the cancellation")
	}
}

// rawOutcomes is a store whose outcome log gives back every event appended,
// whoever its user is now: StoreSource must leave out those of restricted
// and erased users itself.
type rawOutcomes struct {
	store.Store
	events [][]byte
}

func (r *rawOutcomes) AppendOutcomes(_ context.Context, _ []string, events [][]byte) error {
	r.events = append(r.events, events...)
	return nil
}

func (r *rawOutcomes) ReadOutcomes(_ context.Context, fn func([]byte) error) error {
	for _, e := range r.events {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// StoreSource leaves out the events of users who restricted processing of
// their data or were erased (Art. 23, 24), even from a store that gives
// them back, whatever the users' facts come from; the other events keep
// their line numbers, and the report counts what was left out.
func TestStoreSourceLeavesOutRestrictedAndErased(t *testing.T) {
	ctx := context.Background()
	mem, err := memory.Open(ctx, memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	for _, ch := range []consent.Change{
		consent.DeclareTag("ua", "interest:ski"),
		consent.DeclareTag("ub", "interest:ski"), consent.Restrict("ub"),
		consent.DeclareTag("uc", "interest:ski"), consent.Erase("uc"),
		consent.DeclareTag("ud", "interest:ski"), consent.Restrict("ud"), consent.Unrestrict("ud"),
	} {
		if _, err := mem.Apply(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range []store.Store{mem, noBatchStore{mem}} {
		raw := &rawOutcomes{Store: st}
		users, events := goodEvents(t, 25) // users ua..ue, 5 events each
		for i, u := range undecodable {
			at := (i * 3) % len(users)
			users = append(users[:at], append([]string{"ub"}, users[at:]...)...)
			events = append(events[:at], append([][]byte{u}, events[at:]...)...)
		}
		raw.AppendOutcomes(ctx, users, events)
		for _, facts := range []audit.UserFacts{nil, audit.StoreFacts(st)} {
			spec := audit.Spec{Groups: []audit.GroupSpec{{Name: "all", Segment: "*"}}, Reference: "all", MinGroupSize: 1,
				Metrics: []audit.MetricSpec{{Name: "price", Kind: audit.Mean, Field: "price"}}}
			rep, err := audit.Run(ctx, spec, audit.StoreSource(ctx, raw), facts, audit.Options{})
			if err != nil {
				t.Fatal(err)
			}
			// The malformed event of uc (no time, no mode) is left out
			// with uc's others before it is checked.
			if rep.Events != 26 || rep.Used != 15 || rep.Excluded != 11 || rep.Groups[0].Users != 3 {
				t.Fatalf("events %d, used %d, excluded %d, users %d; want 26, 15 (ua, ud, ue), 11 (ub, uc), 3", rep.Events, rep.Used, rep.Excluded, rep.Groups[0].Users)
			}
			want := ordinals(t, raw, func(e []byte) bool { return isUndecodable(e) && !bytes.Contains(e, []byte(`"uc"`)) })
			if rep.Skipped != int64(len(want)) {
				t.Fatalf("skipped %d, want %d", rep.Skipped, len(want))
			}
			for i, p := range rep.Problems {
				if p.Line != want[i] {
					t.Fatalf("problem %d at line %d, want %d (lines keep their numbers)", i, p.Line, want[i])
				}
			}
		}
		src := audit.StoreSource(ctx, raw)
		for {
			ev, err := src.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err == nil && (ev.UserID == "ub" || ev.UserID == "uc") {
				t.Fatalf("the source gave an event of %s", ev.UserID)
			}
		}
	}
}

// noBatchStore hides the store's GetMany.
type noBatchStore struct{ store.Store }
