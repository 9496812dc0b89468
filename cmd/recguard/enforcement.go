package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/recguard/recguard/enforce"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
)

const enforcementUsage = `usage: recguard audit enforcement [store flags] [--from TIME] [--to TIME]
                                  [--allowance D] [--settings-allowance D] [--max-violations N]
                                  [--format json|csv|html] [--lang en|zh-CN] [--out FILE] [--workers N]

The enforcement audit: replays every user's consent receipts, and the
settings receipts, against the store's ledger of exposures and pushes, and
lists every entry that broke the consent in force at its time (a
personalized exposure after an opt-out, a push on a refused channel, a
targeted push after an opt-out, anything while suspended or restricted, a
minor without guardian consent, a deleted tag, a sensitive tag without its
consent, a mode its decision contradicts) with its evidence: the entry's
time, surface, mode and decision ID, the receipt it broke and how long
after it came. The report also counts the violations per kind, per day and
per surface, the entries within the allowances and their longest lag, the
ledger's drop counts and its coverage (the share of exposures and pushes a
decision backs), and the provisions (audience exports, Art. 12) by
recipient.

The report goes to --out, else to standard output; the format is --format,
else the extension of --out (.json, .csv, .html), else json. JSON holds
everything (field violations: kind, user, at and the evidence), CSV one row
per violation, HTML one self-contained page for a regulator (the first
1,000 violations; the others are in the JSON and CSV). --lang zh-CN writes
the HTML page in Simplified Chinese (default en, English); JSON and CSV
stay as they are (field names and codes), and --lang is accepted and
ignored with them.

--from and --to bound the entries audited by their time (from <= at < to):
RFC 3339 (2025-03-01T00:00:00Z) or a date (2025-03-01, midnight UTC). Without
them every entry the ledger keeps is audited.

An entry that breaks a user's change within --allowance of it (default 2s,
the SDK's lease), or a settings change (the suspension, a policy version)
within --settings-allowance (default 30s), is put down to propagation:
counted in the report, not listed. 0s means no allowance; at most 24h.

The store is only read. The embedded store (--data) cannot be audited
while recguard serve holds its directory: audit a copy, or stop it; a
Redis store can be audited while it serves.

Exit status: 0 when no violation was found, 1 when violations were found
(the report is written; CI and cron jobs can alert on it), 2 on errors
(bad flags, no store, a failed read: no report is written).

Every flag can also be set by an environment variable: RECGUARD_ and the
flag's name in upper case, dashes as underscores (--settings-allowance:
RECGUARD_SETTINGS_ALLOWANCE). The command line wins.

flags:
`

// Exit statuses of recguard audit enforcement.
const (
	enforceClean      = 0 // no violation
	enforceViolations = 1 // violations found (the report is written)
	enforceError      = 2 // no report written
)

// enforcementMain runs `recguard audit enforcement` when args name it and
// exits with its status (0 clean, 1 violations, 2 errors); for any other
// command it returns.
func enforcementMain(args []string) {
	if len(args) < 2 || args[0] != "audit" || args[1] != "enforcement" {
		return
	}
	os.Exit(enforcementCmd(context.Background(), args[2:], os.Stdout, os.Stderr))
}

// errViolations is what run returns for `audit enforcement` when it found
// violations (main exits 1 with enforcementMain before run is reached).
var errViolations = errors.New("audit enforcement: violations found")

// enforcementErr turns an exit status of enforcementCmd into run's error.
func enforcementErr(code int) error {
	switch code {
	case enforceClean:
		return nil
	case enforceViolations:
		return errViolations
	}
	return errors.New("audit enforcement failed")
}

// enforcementCmd runs `recguard audit enforcement` with args and returns
// its exit status.
func enforcementCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit enforcement", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, enforcementUsage)
		fs.PrintDefaults()
	}
	var sf storeFlags
	sf.register(fs)
	from := fs.String("from", "", "audit the entries from this time on (RFC 3339, or a date: midnight UTC)")
	to := fs.String("to", "", "audit the entries before this time (RFC 3339, or a date: midnight UTC)")
	allowance := fs.Duration("allowance", enforce.DefaultAllowance, "an entry this soon after the user's change it breaks is put down to propagation (0s: none; at most 24h)")
	setAllowance := fs.Duration("settings-allowance", enforce.DefaultSettingsAllowance, "the same for a settings change: the suspension, a policy version (0s: none; at most 24h)")
	maxViolations := fs.Int("max-violations", enforce.DefaultMaxViolations, "violations listed in the report, the oldest first (all are counted)")
	format := fs.String("format", "", "report format: json, csv or html (default from --out's extension, else json)")
	out := fs.String("out", "", "report file (default standard output)")
	workers := fs.Int("workers", 0, "users replayed at once (default 4 per CPU; more helps a remote Redis)")
	lang := fs.String("lang", "en", "the HTML report's language: en or zh-CN (accepted and ignored for json and csv)")
	fail := func(err error) int {
		fmt.Fprintln(stderr, "recguard audit enforcement:", err)
		return enforceError
	}
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return enforceClean
	}
	if err != nil {
		return enforceError // the flag package printed it
	}
	if err := applyEnv(fs, os.LookupEnv); err != nil {
		return fail(err)
	}
	if len(pos) > 0 {
		return fail(fmt.Errorf("unexpected argument %q", pos[0]))
	}
	opts, err := enforceOptions(*from, *to, *allowance, *setAllowance, *maxViolations, *workers)
	if err != nil {
		return fail(err)
	}
	fmtName, err := pickFormat(*format, *out)
	if err != nil {
		return fail(err)
	}
	reportLanguage, err := reportLang(*lang)
	if err != nil {
		return fail(err)
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, closeAll, err := openForEnforcement(ctx, &sf, log)
	if err != nil {
		return fail(err)
	}
	defer closeAll()
	if _, ok := st.(store.Ledger); !ok {
		return fail(errors.New("this store keeps no ledger of exposures and pushes"))
	}

	rep, err := enforce.Run(ctx, st, opts)
	if err != nil {
		return fail(err)
	}
	var buf bytes.Buffer
	switch fmtName {
	case "html":
		err = rep.WriteHTMLLang(&buf, reportLanguage)
	case "csv":
		err = rep.WriteCSV(&buf)
	default:
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	}
	if err != nil {
		return fail(fmt.Errorf("writing the report: %w", err))
	}
	where, err := writeOut(stdout, *out, buf.Bytes())
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(stderr, "audit enforcement: %d entries (%d exposures, %d pushes, %d provisions) of %d users, %d receipts replayed; "+
		"%d violations, %d within the allowances; %s report written to %s\n",
		rep.Entries, rep.Exposures, rep.Pushes, rep.Provisions, rep.Users, rep.Receipts,
		rep.Totals.All, rep.WithinAllowance.All, fmtName, where)
	if rep.Totals.All > 0 {
		return enforceViolations
	}
	return enforceClean
}

// enforceOptions checks the flags and maps them to enforce.Options: a
// flag's 0s allowance means none (the Options' negative), where the
// Options' zero means the default.
func enforceOptions(from, to string, allowance, setAllowance time.Duration, maxViolations, workers int) (enforce.Options, error) {
	var o enforce.Options
	var err error
	if o.From, err = parseWhen("from", from); err != nil {
		return o, err
	}
	if o.To, err = parseWhen("to", to); err != nil {
		return o, err
	}
	if !o.From.IsZero() && !o.To.IsZero() && !o.From.Before(o.To) {
		return o, fmt.Errorf("--to %s is not after --from %s", o.To.Format(time.RFC3339Nano), o.From.Format(time.RFC3339Nano))
	}
	for _, a := range []struct {
		name string
		d    time.Duration
		dst  *time.Duration
	}{{"allowance", allowance, &o.Allowance}, {"settings-allowance", setAllowance, &o.SettingsAllowance}} {
		switch {
		case a.d < 0:
			return o, fmt.Errorf("--%s %v: must not be negative (0s: no allowance)", a.name, a.d)
		case a.d > enforce.MaxAllowance:
			return o, fmt.Errorf("--%s %v: at most %v", a.name, a.d, enforce.MaxAllowance)
		case a.d == 0:
			*a.dst = -1
		default:
			*a.dst = a.d
		}
	}
	if maxViolations < 1 {
		return o, fmt.Errorf("--max-violations %d: want at least 1 (every violation is counted in the totals whatever it says)", maxViolations)
	}
	if workers < 0 {
		return o, fmt.Errorf("--workers %d: must not be negative", workers)
	}
	o.MaxViolations, o.Workers = maxViolations, workers
	return o, nil
}

// parseWhen reads --from or --to: RFC 3339, or a date (midnight UTC);
// empty is no bound.
func parseWhen(name, s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--%s %q: want an RFC 3339 time (2025-03-01T00:00:00Z) or a date (2025-03-01)", name, s)
}

// reportLang checks --lang, the language of an HTML report: en or zh-CN
// (in any case), returned as the report packages spell it.
func reportLang(lang string) (string, error) {
	switch {
	case strings.EqualFold(lang, enforce.LangEN):
		return enforce.LangEN, nil
	case strings.EqualFold(lang, enforce.LangZH):
		return enforce.LangZH, nil
	}
	return "", fmt.Errorf("--lang %q: want en or zh-CN", lang)
}

// openForEnforcement opens the store the flags name for reading: an
// existing embedded store (never a new one) without the compactions an
// Open may start, which would rewrite its data file, or a Redis keyspace
// (never initialised).
func openForEnforcement(ctx context.Context, sf *storeFlags, log *slog.Logger) (store.Store, func(), error) {
	if sf.redisURL != "" || sf.cluster != "" {
		st, _, closeAll, err := sf.open(ctx, openOptions{cmd: "audit enforcement", log: log})
		if err != nil {
			return nil, nil, fmt.Errorf("opening the store: %w", err)
		}
		return st, closeAll, nil
	}
	if !storeExists(sf.data) {
		// Opening it would create an empty store.
		return nil, nil, fmt.Errorf("no store at %s: give --data DIR of an existing store, or the Redis flags", sf.data)
	}
	// The chain key is not needed to read, but a keyed store is opened
	// with its key (DIR/chain.key, or the flags) when there is one.
	key, err := sf.chainKey("audit enforcement", log)
	if err != nil {
		return nil, nil, err
	}
	ms, err := memory.Open(ctx, memory.Options{Dir: sf.data, ChainKey: key, CompactMinBytes: -1, CompactDelay: -1})
	if err != nil {
		return nil, nil, fmt.Errorf("opening the store: %w", err)
	}
	return ms, func() { ms.Close() }, nil
}
