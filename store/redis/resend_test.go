package redis_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/store"
	rs "github.com/recguard/recguard/store/redis"
)

// lossyProxy forwards loopback connections to a Redis server; once armed,
// the next connection that sends a script call has it executed by Redis
// but loses the reply: the proxy closes the connection instead of
// forwarding it, as a network that drops a reply would.
type lossyProxy struct {
	ln    net.Listener
	to    string
	armed atomic.Bool
	skip  atomic.Int64 // script calls let through once armed, before the cut
	cuts  atomic.Int64
	wg    sync.WaitGroup
}

func newLossyProxy(t *testing.T, to string) *lossyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &lossyProxy{ln: ln, to: to}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *lossyProxy) serve(c net.Conn) {
	defer c.Close()
	r, err := net.Dial("tcp", p.to)
	if err != nil {
		return
	}
	defer r.Close()
	var cut atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				if cut.Load() {
					// The reply is lost: the client sees its connection end.
					p.cuts.Add(1)
					c.Close()
					return
				}
				if _, werr := c.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if bytes.Contains(bytes.ToLower(buf[:n]), []byte("evalsha")) && p.armed.Load() {
				if p.skip.Add(-1) < 0 && p.armed.CompareAndSwap(true, false) {
					cut.Store(true)
				}
			}
			if _, werr := r.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	r.Close()
	<-done
}

// A write whose reply is lost is sent again by go-redis (it retries a
// command whose connection ended). The store must not make the change
// twice: one receipt, one changelog entry, and Apply answers the write as
// made, with its entry's position. Both the read-first path and the
// one-round-trip path (a user the store wrote recently).
func TestApplyResentAfterLostReply(t *testing.T) {
	base := redistest.Client(t).(*goredis.Client)
	addr := base.Options().Addr
	for _, tc := range []struct {
		name  string
		cache int
	}{{"read first", -1}, {"one round trip", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			px := newLossyProxy(t, addr)
			o := *base.Options()
			o.Addr = px.ln.Addr().String()
			o.MaxRetries = 3
			c := goredis.NewClient(&o)
			defer c.Close()
			pfx := redistest.Prefix(t, base)
			s := mustNew(t, c, rs.Options{Prefix: pfx, Init: true, Logger: quiet, WriteCache: tc.cache})
			ctx := t.Context()
			u := "lost-reply"
			mustApply(t, s, consent.DeclareTag(u, "interest:ski")) // loads the script
			before, err := s.Receipts(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			shard := store.ShardOf(u, s.Shards())
			evs, err := s.ReadChangelog(ctx, shard, store.Position(""), 1000, 0)
			if err != nil && !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			last := evs[len(evs)-1].Pos

			px.armed.Store(true)
			a, err := s.Apply(ctx, consent.DeclareTag(u, "interest:golf"))
			if err != nil {
				t.Fatalf("apply: %v", err)
			}
			if px.cuts.Load() != 1 {
				t.Fatalf("%d replies lost, want 1 (the proxy did not see the write)", px.cuts.Load())
			}
			after, err := s.Receipts(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			if len(after) != len(before)+1 {
				t.Fatalf("%d receipts after one change (was %d): the resent write was made again", len(after), len(before))
			}
			if got, want := after[len(after)-1].Seq, before[len(before)-1].Seq+1; got != want {
				t.Fatalf("the new receipt has sequence number %d, want %d", got, want)
			}
			more, err := s.ReadChangelog(ctx, shard, last, 1000, 0)
			if err != nil {
				t.Fatal(err)
			}
			var mine []store.Event
			for _, e := range more {
				if e.Record.UserID == u {
					mine = append(mine, e)
				}
			}
			if len(mine) != 1 {
				t.Fatalf("%d changelog entries for one change", len(mine))
			}
			if a.Receipt == nil || a.Receipt.ID != after[len(after)-1].ID || a.Pos != mine[0].Pos {
				t.Errorf("applied %+v at %s; want the receipt %s at %s", a.Receipt, a.Pos, after[len(after)-1].ID, mine[0].Pos)
			}
			rec, err := s.Get(ctx, u)
			if err != nil || rec.Version != a.Record.Version || len(rec.Tags.Entries) != 2 {
				t.Errorf("record %+v (%v), want version %d with two tags", rec, err, a.Record.Version)
			}
		})
	}
}

// The same for a batch (store.BatchApplier): its write script's reply is
// lost and go-redis sends it again; the script finds its own write and the
// batch is answered as made, each change once.
func TestApplyBatchResentAfterLostReply(t *testing.T) {
	base := redistest.Client(t).(*goredis.Client)
	px := newLossyProxy(t, base.Options().Addr)
	o := *base.Options()
	o.Addr = px.ln.Addr().String()
	o.MaxRetries = 3
	c := goredis.NewClient(&o)
	defer c.Close()
	s := mustNew(t, c, rs.Options{Prefix: redistest.Prefix(t, base), Init: true, Logger: quiet, WriteCache: -1})
	ctx := t.Context()
	u := "lost-batch"
	mustApply(t, s, consent.DeclareTag(u, "interest:ski")) // loads the apply script
	chs := []consent.Change{consent.DeclareTag(u, "interest:golf"), consent.RefuseChannel(u, "sms")}
	// Warm the batch's scripts, then lose the reply of the second script
	// call of the next batch: the first reads the users, the second writes.
	if _, errs := s.ApplyBatch(ctx, []consent.Change{consent.DeclareTag("warm", "interest:ski")}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	before, err := s.Receipts(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	px.skip.Store(1)
	px.armed.Store(true)
	applied, errs := s.ApplyBatch(ctx, chs)
	if i, err := store.FirstError(errs); err != nil {
		t.Fatalf("batch change %d: %v", i, err)
	}
	if px.cuts.Load() != 1 {
		t.Fatalf("%d replies lost, want 1", px.cuts.Load())
	}
	after, err := s.Receipts(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before)+len(chs) {
		t.Fatalf("%d receipts after %d changes (was %d): the resent batch was written again", len(after), len(chs), len(before))
	}
	for i, a := range applied {
		if a.Receipt == nil {
			t.Errorf("change %d answered without its receipt: %+v", i, a)
		}
	}
	rec, err := s.Get(ctx, u)
	if err != nil || len(rec.Tags.Entries) != 2 || len(rec.State.RefusedChannels) != 1 {
		t.Errorf("record %+v (%v)", rec, err)
	}
}
