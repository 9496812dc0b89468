package server_test

// Partial state under the server (issue 10, part 4): keys of a Redis store
// deleted or corrupted behind recguard's back (record hashes, the record
// JSON, user-list entries, changelog entries), under a running server and
// under one that starts on the damaged keyspace. Nothing may crash; a user
// whose record is missing or corrupt gets fail-closed decisions and is in
// no audience; everyone else keeps getting the right answers; the server
// keeps serving.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/server"
	"github.com/recguard/recguard/store"
	rs "github.com/recguard/recguard/store/redis"
)

const partialShards = 4

// partialKeyspace is a Redis keyspace of its own on the shared Redis, with
// a store handle (w) that writes to it without going through any SDK
// client, so the clients under test cache nothing they did not read.
type partialKeyspace struct {
	t      *testing.T
	ctx    context.Context
	c      goredis.UniversalClient
	prefix string
	w      *rs.Store
	users  []string
	r      *rand.Rand
}

func newPartialKeyspace(t *testing.T, n int) *partialKeyspace {
	t.Helper()
	ctx := context.Background()
	c := redistest.Client(t)
	p := &partialKeyspace{t: t, ctx: ctx, c: c, prefix: redistest.Prefix(t, c)}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	p.r = rand.New(rand.NewPCG(seed, 10))
	p.w = p.open(true)
	for i := 0; i < n; i++ {
		u := fmt.Sprintf("pu%03d", i)
		p.users = append(p.users, u)
		p.apply(consent.DeclareTag(u, "interest:ski"))
		if i%4 == 1 {
			p.apply(consent.SetPersonalization(u, false))
		}
		if i%5 == 2 {
			p.apply(consent.RefuseChannel(u, "push"))
		}
	}
	return p
}

// open returns a new store handle on the keyspace.
func (p *partialKeyspace) open(init bool) *rs.Store {
	p.t.Helper()
	st, err := rs.New(p.ctx, p.c, rs.Options{Prefix: p.prefix, Shards: partialShards, Init: init, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { st.Close() })
	return st
}

func (p *partialKeyspace) apply(ch consent.Change) {
	p.t.Helper()
	if _, err := p.w.Apply(p.ctx, ch); err != nil {
		p.t.Fatalf("Apply(%s %s): %v", ch.Op, ch.UserID, err)
	}
}

func (p *partialKeyspace) tag(shard int) string { return p.prefix + ":{" + strconv.Itoa(shard) + "}:" }
func (p *partialKeyspace) shardOf(u string) int { return store.ShardOf(u, partialShards) }
func (p *partialKeyspace) userKey(u string) string {
	return p.tag(p.shardOf(u)) + "u:" + u
}

func (p *partialKeyspace) must(err error) {
	p.t.Helper()
	if err != nil {
		p.t.Fatal(err)
	}
}

// pick returns n users not in taken, at random, and adds them to taken.
func (p *partialKeyspace) pick(n int, taken map[string]string, why string) []string {
	var out []string
	for _, i := range p.r.Perm(len(p.users)) {
		if u := p.users[i]; taken[u] == "" {
			taken[u] = why
			out = append(out, u)
			if len(out) == n {
				break
			}
		}
	}
	return out
}

// damageRecords breaks the record hashes of 2 users per kind and returns
// them, with the kind.
func (p *partialKeyspace) damageRecords(taken map[string]string) map[string]string {
	out := map[string]string{}
	kinds := []struct {
		name string
		do   func(u string) error
	}{
		{"record deleted (receipts kept)", func(u string) error { return p.c.Del(p.ctx, p.userKey(u)).Err() }},
		{"record JSON garbage", func(u string) error { return p.c.HSet(p.ctx, p.userKey(u), "d", "{\"user_id\":\x00\xff").Err() }},
		{"record JSON of another type", func(u string) error { return p.c.HSet(p.ctx, p.userKey(u), "d", "[1,2]").Err() }},
		{"record version garbage", func(u string) error { return p.c.HSet(p.ctx, p.userKey(u), "v", "x9").Err() }},
		{"record number 0", func(u string) error { return p.c.HSet(p.ctx, p.userKey(u), "n", "0").Err() }},
	}
	for _, k := range kinds {
		for _, u := range p.pick(2, taken, k.name) {
			p.must(k.do(u))
			out[u] = k.name
		}
	}
	return out
}

// damageLists breaks the user-list entries of 3 users (their records stay
// intact) and returns them.
func (p *partialKeyspace) damageLists(taken map[string]string) map[string]string {
	out := map[string]string{}
	for i, u := range p.pick(3, taken, "list") {
		rec, err := p.w.Get(p.ctx, u)
		p.must(err)
		sh, local := store.NumberShard(rec.Number, partialShards)
		var v string
		switch i {
		case 0:
			v = "not a user id!"
		case 1: // a user of another shard
			for _, o := range p.users {
				if p.shardOf(o) != sh {
					v = o
					break
				}
			}
		default: // another user of the same shard, listed twice now
			for _, o := range p.users {
				if p.shardOf(o) == sh && o != u && taken[o] == "" {
					v = o
					break
				}
			}
		}
		p.must(p.c.LSet(p.ctx, p.tag(sh)+"users", int64(local-1), v).Err())
		out[u] = "user list entry replaced by " + strconv.Quote(v)
	}
	return out
}

// damageLogs deletes two entries from the middle of two shard logs. With
// after (the positions of a checkpoint), it deletes entries after them
// that refused the push channel to an intact user who is not opted out: an
// index that replays the log without noticing the gap keeps that user in
// push audiences (fail open).
// It returns the users whose entries it deleted (also added to taken).
func (p *partialKeyspace) damageLogs(after []store.Position, taken map[string]string) map[string]string {
	out := map[string]string{}
	for _, sh := range []int{0, 2} {
		start := "-"
		if after != nil && after[sh] != "" {
			start = "(" + string(after[sh])
		}
		msgs, err := p.c.XRange(p.ctx, p.tag(sh)+"log", start, "+").Result()
		p.must(err)
		// The entries' records as the store reads them (its encoding of
		// an entry is its own business), by stream ID.
		recs := map[string]consent.Record{}
		if after != nil {
			evs, err := p.w.ReadChangelog(p.ctx, sh, after[sh], len(msgs)+1, 0)
			p.must(err)
			for _, ev := range evs {
				if ev.Record != nil && !ev.Shredded {
					recs[string(ev.Pos)] = *ev.Record
				}
			}
		}
		var del []string
		for _, m := range msgs[len(msgs)/4:] {
			if after == nil {
				del = append(del, m.ID)
			} else {
				rec, ok := recs[m.ID]
				if !ok || taken[rec.UserID] != "" {
					continue
				}
				cur, err := p.w.Get(p.ctx, rec.UserID)
				p.must(err)
				if rec.State.ChannelRefused("push") && cur.State.ChannelRefused("push") && !cur.State.PersonalizationOff {
					del = append(del, m.ID)
					out[rec.UserID] = "changelog entry deleted"
				}
			}
			if len(del) == 2 {
				break
			}
		}
		if len(del) < 2 {
			p.t.Fatalf("shard %d: found %d entries to delete after %s", sh, len(del), start)
		}
		p.must(p.c.XDel(p.ctx, p.tag(sh)+"log", del...).Err())
		for u, why := range out {
			taken[u] = why
		}
	}
	return out
}

// partialServer is a server on its own SDK client over the keyspace.
type partialServer struct {
	p          *partialKeyspace
	client     *sdk.Client
	ts         *httptest.Server
	app, admin string
	hc         *http.Client
}

func (p *partialKeyspace) serve(st *rs.Store) *partialServer {
	p.t.Helper()
	client, err := sdk.New(p.ctx, st, sdk.Config{Audiences: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		p.t.Fatalf("sdk.New over the keyspace: %v", err)
	}
	p.t.Cleanup(func() { client.Close() })
	if err := client.Ready(p.ctx); err != nil {
		p.t.Fatal(err)
	}
	srv, err := server.New(server.Config{Client: client, Store: st, RateLimit: -1, AuthFailRate: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		p.t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	p.t.Cleanup(ts.Close)
	s := &partialServer{p: p, client: client, ts: ts, hc: &http.Client{Timeout: 10 * time.Second}}
	s.app, _, err = server.NewKey(p.ctx, st, server.RoleApp, "app", time.Now())
	p.must(err)
	s.admin, _, err = server.NewKey(p.ctx, st, server.RoleAdmin, "admin", time.Now())
	p.must(err)
	return s
}

func (s *partialServer) do(method, path, key, body string) (int, []byte) {
	s.p.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = stringsReader(body)
	}
	req, err := http.NewRequest(method, s.ts.URL+path, rd)
	s.p.must(err)
	req.Header.Set("Authorization", "Bearer "+key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		s.p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
		s.p.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, b
}

func stringsReader(s string) io.Reader { return &stringReader{s: s} }

type stringReader struct{ s string }

func (r *stringReader) Read(b []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(b, r.s)
	r.s = r.s[n:]
	return n, nil
}

func (s *partialServer) decision(u string) server.DecisionResponse {
	s.p.t.Helper()
	code, b := s.do("GET", "/v1/users/"+u+"/decision", s.app, "")
	var d server.DecisionResponse
	if code != 200 || json.Unmarshal(b, &d) != nil {
		s.p.t.Fatalf("decision for %s: %d %s", u, code, b)
	}
	return d
}

// checkDecisions checks every user's decision: fail closed (not
// personalized; reason data_loss or unavailable) for users whose record is
// damaged, the stored record's answer for everyone else (within a few
// seconds: followers apply changes asynchronously). Never personalized for
// a user whose stored record says personalization off.
func (s *partialServer) checkDecisions(damaged map[string]string) {
	t := s.p.t
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, u := range s.p.users {
		for {
			d := s.decision(u)
			if why := damaged[u]; why != "" {
				if d.Personalized || (d.Reason != consent.ReasonDataLoss && d.Reason != consent.ReasonUnavailable) {
					t.Errorf("decision for %s (%s): personalized %t, reason %s; want false, data_loss or unavailable", u, why, d.Personalized, d.Reason)
				}
				break
			}
			rec, err := s.p.w.Get(s.p.ctx, u)
			if err != nil {
				t.Fatalf("Get(%s), an intact user: %v", u, err)
			}
			if d.Personalized && rec.State.PersonalizationOff {
				t.Fatalf("decision for %s is personalized; the store says personalization off (fail open)", u)
			}
			if d.Personalized == !rec.State.PersonalizationOff {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("decision for %s (intact): personalized %t, reason %s; the store says personalization off = %t", u, d.Personalized, d.Reason, rec.State.PersonalizationOff)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// expected returns the users a targeted push on "push" to interest:ski
// reaches, from the stored records of the users not excluded.
func (s *partialServer) expected(excluded map[string]string) []string {
	var out []string
	for _, u := range s.p.users {
		if excluded[u] != "" {
			continue
		}
		rec, err := s.p.w.Get(s.p.ctx, u)
		if err != nil {
			s.p.t.Fatalf("Get(%s): %v", u, err)
		}
		if !rec.State.PersonalizationOff && !rec.State.ChannelRefused("push") && !rec.State.Erased {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

func (s *partialServer) audience() (int, []string) {
	s.p.t.Helper()
	q := url.Values{"segment": {"interest:ski"}, "channel": {"push"}, "targeted": {"true"}, "limit": {"10000"}}
	code, b := s.do("GET", "/v1/admin/audience?"+q.Encode(), s.admin, "")
	if code != 200 {
		return code, nil
	}
	var a server.AudienceResponse
	if err := json.Unmarshal(b, &a); err != nil {
		s.p.t.Fatalf("audience: %v: %s", err, b)
	}
	if a.Count != uint64(len(a.Users)) {
		s.p.t.Fatalf("audience count %d, %d users listed", a.Count, len(a.Users))
	}
	slices.Sort(a.Users)
	return code, a.Users
}

// checkAudience checks that the audience answers, holds none of the users
// in out, and is exactly the expected one over the users not in excluded
// (out plus users whose membership is not asserted), within a few seconds.
func (s *partialServer) checkAudience(out, excluded map[string]string) {
	t := s.p.t
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, got := s.audience()
		if code != 200 {
			t.Fatalf("audience over damaged keys: status %d", code)
		}
		var held []string
		var filtered []string
		for _, u := range got {
			if why := out[u]; why != "" {
				held = append(held, u+" ("+why+")")
			}
			if excluded[u] == "" {
				filtered = append(filtered, u)
			}
		}
		want := s.expected(excluded)
		if len(held) == 0 && slices.Equal(filtered, want) {
			return
		}
		if time.Now().After(deadline) {
			if len(held) > 0 {
				t.Errorf("audience holds %d damaged users: %v", len(held), held)
			}
			var extra, missing []string
			for _, u := range filtered {
				if !slices.Contains(want, u) {
					extra = append(extra, u)
				}
			}
			for _, u := range want {
				if !slices.Contains(filtered, u) {
					missing = append(missing, u)
				}
			}
			if len(extra)+len(missing) > 0 {
				t.Errorf("audience over intact users differs from their records: %d extra %v (fail open), %d missing %v", len(extra), extra, len(missing), missing)
			}
			t.FailNow()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func union(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// Keys damaged under a running server: no crash; users whose record is
// damaged get fail-closed decisions and leave the audiences once the server
// has found their record damaged; everyone else keeps the right answers,
// changes keep flowing, and the server keeps serving.
func TestPartialStateUnderRunningServer(t *testing.T) {
	p := newPartialKeyspace(t, 120)
	s := p.serve(p.open(false))
	s.checkAudience(nil, nil)

	taken := map[string]string{}
	records := p.damageRecords(taken)
	lists := p.damageLists(taken)
	p.damageLogs(nil, taken)
	t.Logf("damaged records: %v; damaged list entries: %v", records, lists)

	// Decisions: the damaged records were never cached, so the server
	// reads them and must find them damaged.
	s.checkDecisions(records)
	// The running index knows the list-damaged users' true state from the
	// changelog: their membership is not asserted here.
	s.checkAudience(records, union(records, lists))

	// Changes keep flowing, over HTTP and behind the server's back.
	var intact []string
	for _, u := range p.users {
		if taken[u] == "" {
			intact = append(intact, u)
		}
	}
	for i, u := range intact[:10] {
		off := i%2 == 0
		code, b := s.do("PUT", "/v1/users/"+u+"/consent/personalization", s.app, fmt.Sprintf(`{"enabled": %t, "surface": "app_settings"}`, !off))
		if code != 200 {
			t.Fatalf("PUT personalization for %s: %d %s", u, code, b)
		}
	}
	for _, u := range intact[10:20] {
		p.apply(consent.RefuseChannel(u, "push"))
	}
	s.checkDecisions(records)
	s.checkAudience(records, union(records, lists))
	if code, b := s.do("GET", "/healthz", "", ""); code != 200 {
		t.Fatalf("healthz: %d %s", code, b)
	}
}

// A server starting on a damaged keyspace (what crashed `serve` at every
// start: a listed user without a record), from an index checkpoint made
// before the damage and without one: it starts; users whose record is
// damaged get fail-closed decisions; no damaged user (record or user-list
// entry) is in an audience; everyone else gets the right answers.
func TestPartialStateAtStart(t *testing.T) {
	for _, withCheckpoint := range []bool{false, true} {
		t.Run(fmt.Sprintf("checkpoint=%t", withCheckpoint), func(t *testing.T) {
			p := newPartialKeyspace(t, 120)
			var after []store.Position
			if withCheckpoint {
				first := p.serve(p.open(false))
				first.checkAudience(nil, nil)
				if err := first.client.Checkpoint(p.ctx); err != nil {
					t.Fatal(err)
				}
				first.client.Close()
				for i := 0; i < partialShards; i++ {
					tail, err := p.w.Tail(p.ctx, i)
					p.must(err)
					after = append(after, tail)
				}
				// Changes after the checkpoint (each user's push refusal
				// flips), some of whose log entries are then lost.
				for _, u := range p.users {
					rec, err := p.w.Get(p.ctx, u)
					p.must(err)
					if rec.State.ChannelRefused("push") {
						p.apply(consent.AllowChannel(u, "push"))
					} else {
						p.apply(consent.RefuseChannel(u, "push"))
					}
				}
			}
			taken := map[string]string{}
			records := p.damageRecords(taken)
			lists := p.damageLists(taken)
			logs := p.damageLogs(after, taken)
			t.Logf("damaged records: %v; damaged list entries: %v; users whose changelog entries were deleted: %v", records, lists, logs)

			s := p.serve(p.open(false))
			s.checkDecisions(records)
			s.checkAudience(union(records, lists), union(records, lists))
			if code, b := s.do("GET", "/healthz", "", ""); code != 200 {
				t.Fatalf("healthz: %d %s", code, b)
			}
		})
	}
}
