package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/recguard/recguard/audit"
	"github.com/recguard/recguard/internal/redistest"
	rs "github.com/recguard/recguard/store/redis"
)

// TestAuditEventsFromStore: --events store audits the outcome events kept
// in a Redis store, with the same result as auditing the same events from
// a file.
func TestAuditEventsFromStore(t *testing.T) {
	_, spec, events, users := auditFixture(t)
	c := redistest.Client(t)
	prefix := redistest.Prefix(t, c)
	st, err := rs.New(context.Background(), c, rs.Options{Prefix: prefix, Init: true})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(events)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	var lines [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev audit.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		ids, lines = append(ids, ev.UserID), append(lines, append([]byte(nil), sc.Bytes()...))
	}
	f.Close()
	if err := st.AppendOutcomes(context.Background(), ids, lines); err != nil {
		t.Fatal(err)
	}
	addr := redistest.Addrs()[0]
	fromStore, stderr, err := runAudit(t, "--spec", spec, "--events", "store", "--users", users, "--redis", "redis://"+addr+"/0", "--prefix", prefix)
	if err != nil {
		t.Fatalf("audit --events store: %v\n%s", err, stderr)
	}
	fromFile, stderr, err := runAudit(t, "--spec", spec, "--events", events, "--users", users)
	if err != nil {
		t.Fatalf("audit --events file: %v\n%s", err, stderr)
	}
	var a, b audit.Report
	if err := json.Unmarshal([]byte(fromStore), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(fromFile), &b); err != nil {
		t.Fatal(err)
	}
	if a.Used != b.Used || a.Used == 0 || len(a.Findings) != len(b.Findings) || len(a.Tests) != len(b.Tests) {
		t.Fatalf("from the store: used %d, %d findings, %d tests; from the file: used %d, %d findings, %d tests",
			a.Used, len(a.Findings), len(a.Tests), b.Used, len(b.Findings), len(b.Tests))
	}
}
