package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/enforce"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	rs "github.com/recguard/recguard/store/redis"
)

// enforceKeyBytes is the chain key of the stores audit enforcement is
// tested on.
var enforceKeyBytes = []byte("cmd enforcement test chain key!!")

// enforceT0 is when the test user turns personalization off.
var enforceT0 = time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)

// enforceUser is the user who opts out.
const enforceUser = "eve"

// fillEnforcementStore records the opt-out of enforceUser at enforceT0
// and, when violate, a personalized exposure 10 s later (a violation) and
// one 100 ms later (within the 2 s allowance); else a non-personalized
// exposure 10 s later and a personalized one before the opt-out. Another
// user, never opted out, gets a personalized exposure.
func fillEnforcementStore(t *testing.T, st store.Store, violate bool) {
	t.Helper()
	ctx := context.Background()
	ch := consent.SetPersonalization(enforceUser, false)
	ch.At = enforceT0
	if _, err := st.Apply(ctx, ch); err != nil {
		t.Fatal(err)
	}
	on := consent.DeclareTag("frank", "interest:chess")
	on.At = enforceT0
	if _, err := st.Apply(ctx, on); err != nil {
		t.Fatal(err)
	}
	exp := func(user string, after time.Duration, mode string) store.LedgerEntry {
		return store.LedgerEntry{Kind: store.LedgerExposure, UserID: user, At: enforceT0.Add(after), Mode: mode, Surface: "sdk", Items: 10}
	}
	entries := []store.LedgerEntry{exp("frank", 10*time.Second, store.ModePersonalized)}
	if violate {
		entries = append(entries, exp(enforceUser, 10*time.Second, store.ModePersonalized), exp(enforceUser, 100*time.Millisecond, store.ModePersonalized))
	} else {
		entries = append(entries, exp(enforceUser, 10*time.Second, store.ModeNonPersonalized), exp(enforceUser, -time.Minute, store.ModePersonalized))
	}
	lg, ok := st.(store.Ledger)
	if !ok {
		t.Fatal("the store keeps no ledger")
	}
	if err := lg.AppendLedger(ctx, entries); err != nil {
		t.Fatal(err)
	}
}

// enforcementStore makes an embedded store in a new directory (with its
// chain key in DIR/chain.key), filled by fillEnforcementStore, and closes
// it. It returns the directory.
func enforcementStore(t *testing.T, violate bool) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, chainKeyName), enforceKeyBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := memory.Open(context.Background(), memory.Options{Dir: dir, ChainKey: enforceKeyBytes, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	fillEnforcementStore(t, s, violate)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func decodeEnforcementReport(t *testing.T, b []byte) enforce.Report {
	t.Helper()
	var rep enforce.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, b)
	}
	return rep
}

// enforceRun runs the command in this process.
func enforceRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = enforcementCmd(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

// checkOneViolation checks the report of a store filled with violate.
func checkOneViolation(t *testing.T, rep enforce.Report) {
	t.Helper()
	if len(rep.Violations) != 1 || rep.Totals.All != 1 {
		t.Fatalf("%d violations listed, %d counted, want 1: %+v", len(rep.Violations), rep.Totals.All, rep.Violations)
	}
	v := rep.Violations[0]
	if v.Kind != enforce.PersonalizedAfterOptOut || v.User != enforceUser || !v.At.Equal(enforceT0.Add(10*time.Second)) {
		t.Errorf("violation %+v, want %s of %s at %v", v, enforce.PersonalizedAfterOptOut, enforceUser, enforceT0.Add(10*time.Second))
	}
	if v.ReceiptID == "" || !v.ReceiptAt.Equal(enforceT0) || v.LagMS != 10000 || v.Surface != "sdk" {
		t.Errorf("evidence %+v", v)
	}
	if rep.WithinAllowance.All != 1 || rep.WithinAllowance.MaxLagMS != 100 || rep.Exposures != 3 || rep.Users != 2 {
		t.Errorf("within %+v, exposures %d, users %d", rep.WithinAllowance, rep.Exposures, rep.Users)
	}
}

// TestEnforcementCommand runs the binary, as cron would, on a store with
// one violation: exit 1 and a JSON report listing it; on a clean store:
// exit 0.
func TestEnforcementCommand(t *testing.T) {
	dir := enforcementStore(t, true)
	stdout, stderr, err := runCLI(t, "audit", "enforcement", "--data", dir)
	if exitCode(err) != 1 {
		t.Fatalf("exit %d, want 1\n%s", exitCode(err), stderr)
	}
	// The JSON field the issue names, read without the package's types.
	var raw struct {
		Violations []map[string]any `json:"violations"`
	}
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil || len(raw.Violations) != 1 ||
		raw.Violations[0]["kind"] != "personalized_after_opt_out" || raw.Violations[0]["user"] != enforceUser ||
		raw.Violations[0]["at"] != "2025-03-04T10:00:10Z" {
		t.Errorf("violations %v (%v)", raw.Violations, err)
	}
	checkOneViolation(t, decodeEnforcementReport(t, []byte(stdout)))
	if !strings.Contains(stderr, "1 violations, 1 within the allowances; json report written to standard output") {
		t.Errorf("stderr:\n%s", stderr)
	}

	clean := enforcementStore(t, false)
	stdout, stderr, err = runCLI(t, "audit", "enforcement", "--data", clean)
	if rep := decodeEnforcementReport(t, []byte(stdout)); exitCode(err) != 0 || len(rep.Violations) != 0 || rep.Exposures != 3 {
		t.Errorf("clean: exit %d, report %+v\n%s", exitCode(err), rep, stderr)
	}
	if !strings.Contains(stdout, `"violations": []`) {
		t.Errorf("clean: violations not an empty list:\n%s", stdout)
	}

	if _, stderr, err := runCLI(t, "audit", "enforcement", "--help"); exitCode(err) != 0 || !strings.Contains(stderr, "Exit status: 0 when no violation") {
		t.Errorf("--help: exit %d\n%s", exitCode(err), stderr)
	}
	if stdout, _, err := runCLI(t, "help"); err != nil || !strings.Contains(stdout, "recguard audit enforcement [store flags]") {
		t.Errorf("help does not list the command (%v):\n%s", err, stdout)
	}
	if _, stderr, err := runCLI(t, "audit", "enforcement", "--data", dir, "--to", "yesterday"); exitCode(err) != 2 || !strings.Contains(stderr, "--to") {
		t.Errorf("bad --to: exit %d\n%s", exitCode(err), stderr)
	}
}

// TestEnforcementFormats: CSV and HTML, by --format and by --out's
// extension.
func TestEnforcementFormats(t *testing.T) {
	dir := enforcementStore(t, true)
	code, stdout, stderr := enforceRun(t, "--data", dir, "--format", "csv")
	if code != 1 {
		t.Fatalf("csv: exit %d\n%s", code, stderr)
	}
	rows, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("csv: %d rows (%v)\n%s", len(rows), err, stdout)
	}
	if rows[0][0] != "kind" || rows[0][1] != "user" || rows[0][2] != "at" ||
		rows[1][0] != string(enforce.PersonalizedAfterOptOut) || rows[1][1] != enforceUser || rows[1][2] != "2025-03-04T10:00:10.000000000Z" {
		t.Errorf("csv rows %q", rows)
	}

	out := filepath.Join(t.TempDir(), "report.html")
	code, stdout, stderr = enforceRun(t, "--data", dir, "--out", out)
	if code != 1 || stdout != "" {
		t.Fatalf("html: exit %d, stdout %q\n%s", code, stdout, stderr)
	}
	page, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<!DOCTYPE html>", "1 violations found.", string(enforce.PersonalizedAfterOptOut), "<code>" + enforceUser + "</code>",
		"2025-03-04 10:00:10.000 UTC"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("html lacks %q", want)
		}
	}
	if bytes.Contains(bytes.ToLower(page), []byte("<script")) {
		t.Error("html has a script")
	}
	if !strings.Contains(stderr, "html report written to "+out) {
		t.Errorf("stderr:\n%s", stderr)
	}

	jsonOut := filepath.Join(t.TempDir(), "r.json")
	if code, _, stderr := enforceRun(t, "--data", dir, "--out", jsonOut, "--format", "json"); code != 1 {
		t.Fatalf("json file: exit %d\n%s", code, stderr)
	}
	b, err := os.ReadFile(jsonOut)
	if err != nil {
		t.Fatal(err)
	}
	checkOneViolation(t, decodeEnforcementReport(t, b))

	// Through run (the in-process path of `recguard audit`).
	var o, e bytes.Buffer
	if err := run(context.Background(), []string{"audit", "enforcement", "--data", dir}, &o, &e); !errors.Is(err, errViolations) {
		t.Errorf("run: %v", err)
	}
	o.Reset()
	if err := run(context.Background(), []string{"audit", "enforcement", "--data", enforcementStore(t, false)}, &o, &e); err != nil {
		t.Errorf("run on a clean store: %v\n%s", err, e.String())
	}
}

// TestEnforcementOptions: the window and the allowances reach the audit,
// from flags and from the environment.
func TestEnforcementOptions(t *testing.T) {
	dir := enforcementStore(t, true)
	count := func(args ...string) (int, enforce.Report) {
		t.Helper()
		code, stdout, stderr := enforceRun(t, append([]string{"--data", dir}, args...)...)
		if code == 2 {
			t.Fatalf("%v: exit 2\n%s", args, stderr)
		}
		return code, decodeEnforcementReport(t, []byte(stdout))
	}
	// No allowance: both exposures after the opt-out are violations.
	if code, rep := count("--allowance", "0s"); code != 1 || rep.Totals.All != 2 || rep.WithinAllowance.All != 0 || rep.Allowance != "0s" {
		t.Errorf("--allowance 0s: exit %d, %d violations, %d within, allowance %q", code, rep.Totals.All, rep.WithinAllowance.All, rep.Allowance)
	}
	// A long one: neither.
	if code, rep := count("--allowance", "20s"); code != 0 || rep.Totals.All != 0 || rep.WithinAllowance.All != 2 {
		t.Errorf("--allowance 20s: exit %d, %d violations, %d within", code, rep.Totals.All, rep.WithinAllowance.All)
	}
	// A window that ends before the violation.
	if code, rep := count("--from", "2025-03-04", "--to", "2025-03-04T10:00:05Z"); code != 0 || rep.Entries != 1 || rep.Totals.All != 0 ||
		!rep.From.Equal(time.Date(2025, 3, 4, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("window: exit %d, %d entries, %d violations, from %v", code, rep.Entries, rep.Totals.All, rep.From)
	}
	// A window that starts after it.
	if code, rep := count("--from", "2025-03-04T10:00:11+01:00"); code != 1 || rep.Entries != 3 {
		t.Errorf("--from with an offset (09:00:11Z): exit %d, %d entries", code, rep.Entries)
	}
	if code, rep := count("--from", "2025-03-04T10:00:11Z"); code != 0 || rep.Entries != 0 {
		t.Errorf("--from after every entry: exit %d, %d entries", code, rep.Entries)
	}
	// Listing limit: two violations, one listed, both counted.
	if code, rep := count("--allowance", "0s", "--max-violations", "1"); code != 1 || len(rep.Violations) != 1 || rep.ViolationsOmitted != 1 || rep.Totals.All != 2 {
		t.Errorf("--max-violations 1: exit %d, %d listed, %d omitted", code, len(rep.Violations), rep.ViolationsOmitted)
	}
	// The environment, under the command line.
	t.Setenv("RECGUARD_ALLOWANCE", "20s")
	if code, rep := count(); code != 0 || rep.Allowance != "20s" {
		t.Errorf("RECGUARD_ALLOWANCE=20s: exit %d, allowance %q", code, rep.Allowance)
	}
	if code, rep := count("--allowance", "2s"); code != 1 || rep.Allowance != "2s" {
		t.Errorf("--allowance 2s over RECGUARD_ALLOWANCE: exit %d, allowance %q", code, rep.Allowance)
	}
	t.Setenv("RECGUARD_ALLOWANCE", "")
	t.Setenv("RECGUARD_SETTINGS_ALLOWANCE", "1m")
	if _, rep := count(); rep.SettingsAllowance != "1m0s" {
		t.Errorf("RECGUARD_SETTINGS_ALLOWANCE=1m: %q", rep.SettingsAllowance)
	}
	t.Setenv("RECGUARD_SETTINGS_ALLOWANCE", "")
	t.Setenv("RECGUARD_FORMAT", "csv")
	if code, stdout, _ := enforceRun(t, "--data", dir); code != 1 || !strings.HasPrefix(stdout, "kind,user,at,") {
		t.Errorf("RECGUARD_FORMAT=csv: exit %d\n%s", code, stdout)
	}
	t.Setenv("RECGUARD_FORMAT", "")
	t.Setenv("RECGUARD_TO", "not a time")
	if code, stdout, stderr := enforceRun(t, "--data", dir); code != 2 || stdout != "" || !strings.Contains(stderr, "--to") {
		t.Errorf("RECGUARD_TO bad: exit %d\n%s", code, stderr)
	}
	t.Setenv("RECGUARD_TO", "")
	t.Setenv("RECGUARD_MAX_VIOLATIONS", "many")
	if code, stdout, stderr := enforceRun(t, "--data", dir); code != 2 || stdout != "" || !strings.Contains(stderr, "RECGUARD_MAX_VIOLATIONS") {
		t.Errorf("RECGUARD_MAX_VIOLATIONS bad: exit %d\n%s", code, stderr)
	}
}

// TestEnforcementBadFlags: every bad flag exits 2 and writes nothing.
func TestEnforcementBadFlags(t *testing.T) {
	dir := enforcementStore(t, true)
	outDir := t.TempDir()
	out := filepath.Join(outDir, "report.json")
	for name, args := range map[string][]string{
		"from":                 {"--from", "2025-13-01"},
		"to":                   {"--to", "03/04/2025"},
		"to before from":       {"--from", "2025-03-05T00:00:00Z", "--to", "2025-03-04T00:00:00Z"},
		"to at from":           {"--from", "2025-03-04", "--to", "2025-03-04T00:00:00Z"},
		"allowance over 24h":   {"--allowance", "25h"},
		"settings over 24h":    {"--settings-allowance", "24h0m1s"},
		"negative allowance":   {"--allowance", "-1s"},
		"allowance not a time": {"--allowance", "soon"},
		"max violations":       {"--max-violations", "0"},
		"workers":              {"--workers", "-1"},
		"format":               {"--format", "xml"},
		"unknown flag":         {"--window", "1d"},
		"argument":             {"everything"},
		"both redis flags":     {"--redis", "redis://127.0.0.1:1/0", "--redis-cluster", "127.0.0.1:1"},
	} {
		code, stdout, stderr := enforceRun(t, append([]string{"--data", dir, "--out", out}, args...)...)
		if code != 2 || stdout != "" || stderr == "" {
			t.Errorf("%s: exit %d, stdout %q\n%s", name, code, stdout, stderr)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%s: a report was written", name)
		}
	}
	// The format cannot be told from --out.
	if code, _, stderr := enforceRun(t, "--data", dir, "--out", filepath.Join(outDir, "report.txt")); code != 2 || !strings.Contains(stderr, "--format") {
		t.Errorf("--out report.txt: exit %d\n%s", code, stderr)
	}
	// No store there: none is made.
	missing := filepath.Join(t.TempDir(), "nothing")
	if code, _, stderr := enforceRun(t, "--data", missing); code != 2 || !strings.Contains(stderr, "no store at") {
		t.Errorf("no store: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("a store was made")
	}
	if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
		t.Errorf("files written: %v", entries)
	}
	// The messages say what is wrong.
	for args, want := range map[[2]string]string{
		{"--to", "03/04/2025"}: `--to "03/04/2025": want an RFC 3339 time`,
		{"--allowance", "25h"}: "--allowance 25h0m0s: at most 24h0m0s",
		{"--format", "xml"}:    `--format "xml": want html, json or csv`,
	} {
		if _, _, stderr := enforceRun(t, "--data", dir, args[0], args[1]); !strings.Contains(stderr, want) {
			t.Errorf("%v: stderr %q, want %q", args, stderr, want)
		}
	}
	if _, _, stderr := enforceRun(t, "--data", dir, "--from", "2025-03-05", "--to", "2025-03-04"); !strings.Contains(stderr, "--to 2025-03-04T00:00:00Z is not after --from 2025-03-05T00:00:00Z") {
		t.Errorf("to before from: %s", stderr)
	}
}

// TestEnforcementReadOnly: auditing the embedded store leaves its data
// file as it was.
func TestEnforcementReadOnly(t *testing.T) {
	dir := enforcementStore(t, true)
	files := []string{memoryDataFile, "recguard.ledger"}
	before := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || len(b) == 0 {
			t.Fatalf("%s: %d bytes (%v)", f, len(b), err)
		}
		before[f] = b
	}
	if code, _, stderr := enforceRun(t, "--data", dir); code != 1 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	for _, f := range files {
		after, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || !bytes.Equal(before[f], after) {
			t.Errorf("%s changed (%v)", f, err)
		}
	}
}

// TestEnforcementCommandRedis audits a Redis store named by the same store
// flags as the other commands, under a key prefix of its own.
func TestEnforcementCommandRedis(t *testing.T) {
	c := redistest.Client(t)
	prefix := redistest.Prefix(t, c)
	ctx := context.Background()
	st, err := rs.New(ctx, c, rs.Options{Prefix: prefix, Init: true, ChainKey: enforceKeyBytes})
	if err != nil {
		t.Fatal(err)
	}
	fillEnforcementStore(t, st, true)
	flags := []string{"audit", "enforcement", "--prefix", prefix}
	if addrs := redistest.Addrs(); len(addrs) > 1 {
		flags = append(flags, "--redis-cluster", strings.Join(addrs, ","))
	} else {
		flags = append(flags, "--redis", "redis://"+addrs[0]+"/0")
	}
	stdout, stderr, err := runCLIEnv(t, []string{"RECGUARD_CHAIN_KEY=" + hex.EncodeToString(enforceKeyBytes)}, flags...)
	if exitCode(err) != 1 {
		t.Fatalf("redis: exit %d\n%s", exitCode(err), stderr)
	}
	checkOneViolation(t, decodeEnforcementReport(t, []byte(stdout)))
	// The chain key is not needed to read.
	stdout, stderr, err = runCLI(t, append(flags, "--format", "csv")...)
	if rows, perr := csv.NewReader(strings.NewReader(stdout)).ReadAll(); exitCode(err) != 1 || perr != nil || len(rows) != 2 || rows[1][1] != enforceUser {
		t.Errorf("redis csv without a key: exit %d (%v)\n%s\n%s", exitCode(err), perr, stdout, stderr)
	}
	// An empty prefix holds no store: exit 2, nothing written.
	other := append([]string{"audit", "enforcement", "--prefix", prefix + "x"}, flags[4:]...)
	if stdout, stderr, err := runCLI(t, other...); exitCode(err) != 2 || stdout != "" || !strings.Contains(stderr, "holds no recguard store") {
		t.Errorf("redis, no keyspace: exit %d\n%s", exitCode(err), stderr)
	}
}
