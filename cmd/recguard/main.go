// Command recguard runs recguard's companion server and its tools.
//
//	recguard serve [--addr :8080] [--init] [serve flags] [--data ./recguard-data | --redis redis://host:port/0 | --redis-cluster host:port,...]
//	recguard keys create --role app|admin|auditor [--name NAME] [--server URL --admin-key KEY | store flags]
//	recguard keys revoke ID [--server URL --admin-key KEY | store flags]
//	recguard keys list [--server URL --admin-key KEY | store flags]
//	recguard version
//	recguard audit --spec spec.yaml --events events.jsonl [...]
//	recguard verify [store flags] [--format json|html] [--out FILE]
//	recguard audit enforcement [store flags] [--from T] [--to T] [--format json|csv|html] [--out FILE]
//
// With no store flag it uses the embedded store in --data, which survives
// restarts. On first start, serve prints an admin key once. Receipts are
// sealed with the deployment's chain key (--chain-key-file, by default
// DIR/chain.key for the embedded store, made with the store; see
// chainkey.go). A Redis
// keyspace is created only by serve --init: without it serve refuses an
// empty keyspace, so a Redis that lost its data is never silently
// re-initialised.
//
// Every flag of every subcommand can also be set by an environment
// variable: RECGUARD_ and the flag's name in upper case with dashes as
// underscores (--redis-password: RECGUARD_REDIS_PASSWORD). A flag on the
// command line wins over the variable; an empty variable counts as unset.
// Every command's --help lists each flag with its variable.
//
// Exit status: 0 on success and for --help (-h, help); 2 for a usage error
// (an unknown command or flag, a bad flag value, a missing or stray
// argument); 1 for other errors. verify and audit enforcement have their
// own (0 clean, 1 findings or violations, 2 errors).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/audit"
	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/server"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	rs "github.com/recguard/recguard/store/redis"
)

func main() {
	verifyMain(os.Args[1:])      // recguard verify exits 0, 1 (findings) or 2 (errors)
	enforcementMain(os.Args[1:]) // recguard audit enforcement exits 0, 1 (violations) or 2 (errors)
	os.Exit(exitStatus(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr), os.Stderr))
}

// exitStatus is the exit status of run's error, which it prints: 0 for
// none and for a help request, 2 for a usage error (a bad command, flag or
// argument), 1 for any other error.
func exitStatus(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ec reportedExit
	if errors.As(err, &ec) {
		return int(ec) // the command reported it
	}
	fmt.Fprintln(stderr, "recguard:", err)
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// reportedExit is the exit status of a command that reported its outcome
// itself (verify: 1 findings, 2 errors).
type reportedExit int

func (c reportedExit) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

// usageError is an error in how a command was called: an unknown command
// or flag, a bad flag value, a missing or stray argument. recguard exits 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usageErrorf makes a usageError.
func usageErrorf(format string, a ...any) error {
	return &usageError{err: fmt.Errorf(format, a...)}
}

// asUsage marks err as a usage error (nil and flag.ErrHelp stay as they
// are).
func asUsage(err error) error {
	var ue *usageError
	if err == nil || errors.Is(err, flag.ErrHelp) || errors.As(err, &ue) {
		return err
	}
	return &usageError{err: err}
}

const usage = `usage:
  recguard serve [--addr :8080] [--init] [serve flags] [store flags]
  recguard keys create --role app|admin|auditor [--name NAME] [--server URL --admin-key KEY | store flags]
  recguard keys revoke ID [--server URL --admin-key KEY | store flags]
  recguard keys list [--server URL --admin-key KEY | store flags]
                 (--server: through a running serve's admin routes, the way while serve
                 runs on the embedded store, which it locks; recguard keys --help)
  recguard audit --spec spec.yaml --events events.jsonl [--users users.jsonl | store flags] [--format html|json|csv] [--out FILE] [--strict]
                 [--max-malformed PCT] [--min-group-size-floor N]
  recguard seed [--users N] [--seed S] [--events N] [--price-gap PCT] [--init] [store flags]   (a demo data set; --help for more)
  recguard verify [store flags] [--format json|html] [--out FILE] [--workers N]   (Art. 27: every receipt chain and record; exit 1 on findings)
  recguard audit enforcement [store flags] [--from RFC3339] [--to RFC3339] [--allowance D] [--settings-allowance D]
                 [--max-violations N] [--format json|csv|html] [--out FILE] [--workers N]
                 (replays the consent receipts against the ledger of exposures and pushes; exit 0 when
                 no violation, 1 when violations were found, 2 on errors; --help for more)
  recguard version                 the module version and the VCS revision it was built from
  recguard help [COMMAND]          this, or a command's flags with their environment variables

store flags:
  --data DIR               embedded store directory (default ./recguard-data)
  --redis URL              a Redis, e.g. redis://127.0.0.1:6379/0 (rediss:// for TLS)
  --redis-cluster ADDRS    a Redis Cluster, e.g. 10.0.0.1:6379,10.0.0.2:6379
  --prefix P               Redis key prefix (default rg)
  --redis-username U, --redis-password P
                           Redis ACL user and password (over the URL's; prefer
                           RECGUARD_REDIS_PASSWORD to a flag others can see in ps)
  --redis-tls              TLS to Redis, every node of a cluster too (rediss:// URLs
                           have it already)
  --redis-tls-ca FILE      PEM file of the CAs Redis's certificates are checked against
                           (implies --redis-tls; default the system's)
  --redis-timeout D        one Redis command's read/write timeout (default 1s)
  --redis-dial-timeout D   connecting to Redis (default 500ms)
  --allow-evicting         open a Redis whose maxmemory-policy evicts keys (refused
                           otherwise: an evicted record is a forgotten opt-out)
  --durability-replicas N  acknowledge a write only once N replicas have it (WAIT);
                           without it a failover may lose acknowledged writes
  --durability-timeout D   how long to wait for them (default 500ms; under
                           --redis-timeout); past it the answer is 202 not-replicated
  --chain-key-file FILE    the receipt chain key: the file's bytes, readable by its
                           owner only (refused otherwise), at least 16 bytes. Default
                           for the embedded store: DIR/chain.key, made (32 random
                           bytes, mode 0600) with a new store. A Redis store needs
                           this or --chain-key for serve: every instance shares it
  --chain-key HEX          the key in hex instead (prefer RECGUARD_CHAIN_KEY to a
                           flag others can see in ps)
  --unkeyed-chain          no key: only for a store made before chain keys

serve flags:
  --init                   create the recguard keyspace in an empty Redis (ignored
                           when it holds one). Without it serve refuses an empty
                           keyspace: it may be one that lost its data
  --accept-data-loss       open a Redis keyspace that lost shards, accepting that
                           their users start from empty records
  --lease D                trust the cache this long without a confirmed changelog
                           read (default 2s)
  --decision-budget D      /decision and /can-push answer within it, failing closed
                           when the store is slow or gone (default 250ms)
  --store-timeout D        every other route's store work (key check, reads, the
                           change, its rights-log entry) ends within it, else 503
                           unavailable (default 2s; audits have their own 60s)
  --key-cache-ttl D        a revoked key stops working within it (default 5s)
  --key-grace D            keys verified within it keep working while the store
                           cannot be read (default 10m; 0s: none)
  --wait-for-all           acknowledge opt-outs, refusals, withdrawals, deletions,
                           erasures and suspensions only once every live instance
                           applied them, else 202 not-propagated (default true;
                           --wait-for-all=false to acknowledge once recorded)
  --propagation-timeout D  how long to wait for every instance (default 2s)
  --auth-fail-rate R       failed authentications allowed per client address per
                           second before 429 (default 1, burst 30; negative: off)
  --trusted-proxies LIST   proxies whose X-Forwarded-For names the client address
                           (default none)
  --log-requests           log every request: method, route (never the raw path),
                           status, duration, request ID, key ID (default off)
  --changelog-retention D  how long changelog entries are kept (default 168h: 7 days)
  --outcome-retention D    how long outcome events are kept (default 4320h: 180 days)
  --ledger-sampling R      share of exposures recorded in the ledger, in (0, 1]
                           (default 1: every one; pushes and provisions always)
  --ledger-queue N         ledger entries waiting to be written before new ones
                           are dropped and counted (default 8192)
  --ledger-retention D     how long ledger exposures and pushes are kept (default
                           4320h: 180 days); provision records (audience exports,
                           Art. 12) are kept at least 3 years whatever it says
  --ledger-maxlen N        entries kept per shard's ledger stream (default 2000000)
  --excessive-copies N     copy requests (exports, receipt lists) per user in 30 days
                           before further ones are flagged as clearly excessive
                           (still served; default 10; negative: no count)
  --audit-min-group-size N privacy floor of audits: a spec's min_group_size under it
                           runs with it, and the report says so (default 50; at
                           least 10)
  --decision-secret-file FILE
                           the secret decision IDs are signed under (every /decision
                           and /can-push answer carries one; POST /v1/events verifies
                           it): the file's bytes, owner-only, at least 16 bytes.
                           Default: a key derived from the chain key (the same on
                           every instance). With --unkeyed-chain and no file, a
                           random secret per process: an ID then verifies only on
                           the instance that issued it, until it restarts
  --log-format text|json   log lines on stderr as text (default) or JSON; errors
                           behind 5xx answers carry the request ID answered in
                           X-Request-ID, admin actions (settings, suspension, keys)
                           the key, route and outcome; go-redis's own lines are
                           rate-limited (keys takes --log-format too)
  --rate-limit R           requests per second per API key (default 200, burst
                           --rate-burst, default twice the rate; negative: no limit)
  --max-body N             request body limit in bytes (default 1048576: 1 MiB), for
                           every route but POST /v1/events
  --max-events-body N      POST /v1/events' body limit (default 10240000: its 10,000
                           events of 1 KiB on average)
  --read-timeout D         reading a request (default 10s)
  --write-timeout D        answering it (default 90s; at least twice --store-timeout)
  --idle-timeout D         a kept-alive connection waiting for its next request (default 2m)
  --shutdown-timeout D     on SIGINT/SIGTERM, in-flight requests may take this long (default 20s)

Every flag can also be set by an environment variable: RECGUARD_ and the
flag's name in upper case, dashes as underscores (--redis-password:
RECGUARD_REDIS_PASSWORD, --init: RECGUARD_INIT=true). The command line wins.
recguard COMMAND --help lists every flag of the command with its variable.

Exit status: 0 on success and for --help; 2 for a usage error; 1 for other
errors (verify and audit enforcement: 1 for findings, 2 for errors).
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageErrorf("no command")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "keys":
		return keys(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		if len(args) > 1 {
			return usageErrorf("version: unexpected argument %q", args[1])
		}
		fmt.Fprintln(stdout, versionLine())
		return nil
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && args[1] != "help" && !strings.HasPrefix(args[1], "-") {
			// recguard help CMD [SUB]: CMD [SUB] --help.
			return run(ctx, append(append([]string{}, args[1:]...), "--help"), stdout, stderr)
		}
	case "audit":
		return auditCmd(ctx, args[1:], stdout, stderr)
	case "verify": // main runs it first (verifyMain); here for recguard help verify and tests
		if code := verifyCmd(ctx, args[1:], stdout, stderr); code != 0 {
			return reportedExit(code)
		}
		return nil
	case "seed":
		return seedRun(ctx, args[1:], stdout, stderr) // exits 2 on bad flags (seed.go)
	}
	if h := args[0]; h == "help" || h == "-h" || h == "-help" || h == "--help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageErrorf("unknown command %q", args[0])
}

// storeFlags are the flags that choose and open the store.
type storeFlags struct {
	data, redisURL, cluster, prefix string
	username, password              string
	tls, allowEvicting              bool
	tlsCA                           string // --redis-tls-ca: PEM file of the CAs Redis's certificates are checked against
	timeout, dialTimeout            time.Duration
	replicas                        int
	durTimeout                      time.Duration
	// The receipt chain key (chainkey.go): --chain-key, --chain-key-file,
	// --unkeyed-chain.
	chainKeyHex, chainKeyFile string
	unkeyed                   bool
}

func (sf *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&sf.data, "data", "./recguard-data", "embedded store directory")
	fs.StringVar(&sf.redisURL, "redis", "", "Redis URL (redis://host:port/db, rediss:// for TLS)")
	fs.StringVar(&sf.cluster, "redis-cluster", "", "comma-separated Redis Cluster addresses")
	fs.StringVar(&sf.prefix, "prefix", "", "Redis key prefix (default rg)")
	fs.StringVar(&sf.username, "redis-username", "", "Redis ACL user (over the URL's)")
	fs.StringVar(&sf.password, "redis-password", "", "Redis password (over the URL's; prefer RECGUARD_REDIS_PASSWORD)")
	fs.BoolVar(&sf.tls, "redis-tls", false, "connect to Redis (every node of a cluster) with TLS")
	fs.StringVar(&sf.tlsCA, "redis-tls-ca", "", "PEM file of the CA certificates Redis's TLS certificates are checked against (implies --redis-tls; default the system's)")
	fs.DurationVar(&sf.timeout, "redis-timeout", 0, "one Redis command's read/write timeout (default the URL's read_timeout, else 1s)")
	fs.DurationVar(&sf.dialTimeout, "redis-dial-timeout", 0, "Redis connect timeout (default the URL's dial_timeout, else 500ms)")
	fs.BoolVar(&sf.allowEvicting, "allow-evicting", false, "open a Redis whose maxmemory-policy may evict keys")
	fs.IntVar(&sf.replicas, "durability-replicas", 0, "acknowledge writes only once this many replicas have them (Redis WAIT)")
	fs.DurationVar(&sf.durTimeout, "durability-timeout", 0, "how long a write waits for its replicas (default 500ms)")
	sf.registerChainKey(fs)
}

// openOptions are what only some commands may do when opening a store.
type openOptions struct {
	cmd            string // for messages: "serve", "keys", "audit"
	init           bool   // create an empty Redis keyspace (serve --init)
	acceptDataLoss bool   // serve --accept-data-loss
	log            *slog.Logger
	// changelogRetention and outcomeRetention are the stores' retentions
	// (serve --changelog-retention, --outcome-retention); zero: the
	// store's defaults.
	changelogRetention, outcomeRetention time.Duration
	// ledgerRetention and ledgerMaxLen bound the ledger (serve
	// --ledger-retention, --ledger-maxlen); zero: the store's defaults.
	ledgerRetention time.Duration
	ledgerMaxLen    int
}

// redisClientOptions maps the Redis flags (and the URL's fields) to the
// client options of store/redis.
func (sf *storeFlags) redisClientOptions() (rs.ClientOptions, error) {
	var o rs.ClientOptions
	switch {
	case sf.redisURL != "":
		u, err := goredis.ParseURL(sf.redisURL)
		if err != nil {
			return o, fmt.Errorf("--redis: %w", err)
		}
		o.Addrs = []string{u.Addr}
		o.Username, o.Password, o.DB, o.TLS = u.Username, u.Password, u.DB, u.TLSConfig
		if u.ReadTimeout > 0 {
			o.Timeout = u.ReadTimeout
		}
		if u.DialTimeout > 0 {
			o.DialTimeout = u.DialTimeout
		}
		if u.PoolSize > 0 {
			o.PoolSize = u.PoolSize
		}
	case sf.cluster != "":
		for _, a := range strings.Split(sf.cluster, ",") {
			if a = strings.TrimSpace(a); a != "" {
				o.Addrs = append(o.Addrs, a)
			}
		}
		if len(o.Addrs) == 0 {
			return o, errors.New("--redis-cluster: no address")
		}
		o.Cluster = true
	}
	if sf.username != "" {
		o.Username = sf.username
	}
	if sf.password != "" {
		o.Password = sf.password
	}
	if (sf.tls || sf.tlsCA != "") && o.TLS == nil {
		o.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if sf.tlsCA != "" {
		pem, err := os.ReadFile(sf.tlsCA)
		if err != nil {
			return o, fmt.Errorf("--redis-tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return o, fmt.Errorf("--redis-tls-ca: %s holds no PEM certificate", sf.tlsCA)
		}
		o.TLS.RootCAs = pool
	}
	if sf.timeout < 0 || sf.dialTimeout < 0 || sf.durTimeout < 0 || sf.replicas < 0 {
		return o, errors.New("--redis-timeout, --redis-dial-timeout, --durability-timeout and --durability-replicas must not be negative")
	}
	if sf.timeout > 0 {
		o.Timeout = sf.timeout
	}
	if sf.dialTimeout > 0 {
		o.DialTimeout = sf.dialTimeout
	}
	return o, nil
}

// open opens the chosen store with its receipt chain key (see chainKey),
// which it also returns; closeAll releases the store (and its client).
func (sf *storeFlags) open(ctx context.Context, oo openOptions) (st store.Store, key consent.ChainKey, closeAll func(), err error) {
	if oo.log == nil {
		oo.log = slog.Default()
	}
	if sf.redisURL != "" && sf.cluster != "" {
		return nil, nil, nil, errors.New("give --redis or --redis-cluster, not both")
	}
	if key, err = sf.chainKey(oo.cmd, oo.log); err != nil {
		return nil, nil, nil, err
	}
	if sf.redisURL == "" && sf.cluster == "" {
		ms, err := memory.Open(ctx, memory.Options{Dir: sf.data, ChainKey: key,
			ChangelogRetention: oo.changelogRetention, OutcomeRetention: oo.outcomeRetention,
			LedgerRetention: oo.ledgerRetention, LedgerMaxLen: oo.ledgerMaxLen})
		if err != nil {
			return nil, nil, nil, err
		}
		return ms, key, func() { ms.Close() }, nil
	}
	co, err := sf.redisClientOptions()
	if err != nil {
		return nil, nil, nil, err
	}
	c := rs.NewClient(co)
	s, err := rs.New(ctx, c, rs.Options{
		Prefix: sf.prefix, Init: oo.init, AcceptDataLoss: oo.acceptDataLoss, AllowEvicting: sf.allowEvicting,
		Durability: rs.Durability{Replicas: sf.replicas, Timeout: sf.durTimeout}, Logger: oo.log,
		ChainKey: key, ChangelogRetention: oo.changelogRetention, OutcomeRetention: oo.outcomeRetention,
		LedgerRetention: oo.ledgerRetention, LedgerMaxLen: int64(oo.ledgerMaxLen),
	})
	if err != nil {
		c.Close()
		return nil, nil, nil, explainOpen(err, oo.cmd, sf.prefix)
	}
	return s, key, func() { s.Close(); c.Close() }, nil
}

// explainOpen turns the store's refusals to open into what to do.
func explainOpen(err error, cmd, prefix string) error {
	if prefix == "" {
		prefix = "rg"
	}
	switch {
	case errors.Is(err, store.ErrNotInitialized):
		if cmd != "serve" {
			return fmt.Errorf("%w\nthe Redis keyspace (prefix %q) holds no recguard store: create it with `recguard serve --init` first", err, prefix)
		}
		return fmt.Errorf("%w\nthe Redis keyspace (prefix %q) holds no recguard store. "+
			"If this is a new deployment, start once with --init (or RECGUARD_INIT=true) to create it. "+
			"If it held recguard data before, that data is gone (Redis restarted without persistence, flushed, or replaced): "+
			"restore it from its backup or replica instead; initialising would forget every opt-out it held (see docs/operations.md)", err, prefix)
	case errors.Is(err, store.ErrDataLoss):
		if cmd != "serve" {
			return fmt.Errorf("%w\nthe Redis keyspace (prefix %q) lost data: restore it, or accept the loss with `recguard serve --accept-data-loss`", err, prefix)
		}
		return fmt.Errorf("%w\nthe Redis keyspace (prefix %q) lost data: restore it from its backup or replica; "+
			"or start with --accept-data-loss to accept that the users on the lost shards start from empty records (see docs/operations.md)", err, prefix)
	case errors.Is(err, store.ErrUnsafeConfig):
		return fmt.Errorf("%w\nset maxmemory-policy to noeviction (or a volatile-* policy) on Redis, or pass --allow-evicting to run anyway: an evicted record is a forgotten opt-out", err)
	}
	return err
}

func keyStore(st store.Store) (store.KeyStore, error) {
	ks, ok := st.(store.KeyStore)
	if !ok {
		return nil, errors.New("this store keeps no API keys")
	}
	return ks, nil
}

// envNote starts the line annotateEnv adds to a flag's usage.
const envNote = "environment: "

// annotateEnv adds to every flag's usage text a line naming its
// environment variable ("environment: RECGUARD_ADDR"), once, so that every
// command's --help lists them, whether it prints its flags with
// printFlags or with flag.PrintDefaults.
func annotateEnv(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(f.Usage, envNote+envName(f.Name)) {
			f.Usage += "\n" + envNote + envName(f.Name)
		}
	})
}

// printFlags prints fs's flags to w: the name (with two dashes) and the
// kind of value, then the usage, the default and the environment variable,
// each on a line of its own.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	annotateEnv(fs)
	fs.VisitAll(func(f *flag.Flag) {
		kind, text := flag.UnquoteUsage(f)
		text, _, _ = strings.Cut(text, "\n"+envNote)
		line := "  --" + f.Name
		if kind != "" {
			line += " " + kind
		}
		fmt.Fprintln(w, line)
		for _, l := range strings.Split(text, "\n") {
			fmt.Fprintln(w, "        "+l)
		}
		if d := f.DefValue; d != "" && d != "false" && d != "0" && d != "0s" {
			if kind == "string" {
				d = fmt.Sprintf("%q", d)
			}
			fmt.Fprintln(w, "        default: "+d)
		}
		fmt.Fprintln(w, "        "+envNote+envName(f.Name))
	})
}

// envPrefix starts the environment variable of every flag.
const envPrefix = "RECGUARD_"

// envName is the environment variable of the flag name: RECGUARD_ and the
// name in upper case, dashes as underscores.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets every flag of fs not given on the command line from its
// environment variable (see envName), when that is set and not empty.
func applyEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		name := envName(f.Name)
		v, ok := lookup(name)
		if !ok || v == "" {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = fmt.Errorf("%s=%q: %w", name, v, e)
		}
	})
	return err
}

// parseArgs parses args (flags anywhere, see parseInterspersed), then the
// environment variables of the flags not given, and returns the other
// arguments.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	if err := applyEnv(fs, os.LookupEnv); err != nil {
		return nil, asUsage(err)
	}
	return pos, nil
}

// parseInterspersed parses the flags in args wherever they are, so that
// "keys revoke ID --redis URL" (as the usage shows) reads --redis; the flag
// package alone stops at the first argument that is not a flag. It returns
// the other arguments; everything after "--" is one of them.
//
// -h, -help, --help, or "help" as the only other argument, print the
// usage (fs.Usage, which lists each flag's environment variable: see
// annotateEnv) and return flag.ErrHelp; any other parse error is a
// usageError.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	annotateEnv(fs)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, asUsage(err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			if len(pos) == 1 && pos[0] == "help" {
				fs.Usage()
				return nil, flag.ErrHelp
			}
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

const serveUsage = `usage: recguard serve [--addr :8080] [--init] [serve flags] [store flags]

Runs the HTTP API (docs/api.md; the reference is GET /openapi.json). With no
store flag it uses the embedded store in --data (default ./recguard-data),
made on first start, which then prints an admin key once. SIGINT or SIGTERM
stop it gracefully: in-flight requests finish (up to --shutdown-timeout),
the audience index is checkpointed, the process exits 0.

Every flag can also be set by its environment variable (listed with it);
the command line wins, an empty variable counts as unset.

flags:
`

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), serveUsage)
		printFlags(fs.Output(), fs)
	}
	var sf storeFlags
	sf.register(fs)
	addr := fs.String("addr", ":8080", "listen address")
	initStore := fs.Bool("init", false, "create the recguard keyspace in an empty Redis (ignored when it holds one)")
	acceptLoss := fs.Bool("accept-data-loss", false, "open a Redis keyspace that lost shards, accepting that their users start from empty records")
	lease := fs.Duration("lease", 0, "how long answers trust the cache without a confirmed changelog read (default 2s)")
	budget := fs.Duration("decision-budget", 250*time.Millisecond, "/decision and /can-push answer within it, failing closed when the store is slow or gone")
	storeTimeout := fs.Duration("store-timeout", 2*time.Second, "every other route's store work ends within it, else 503 unavailable")
	keyTTL := fs.Duration("key-cache-ttl", 5*time.Second, "a revoked key stops working within it")
	keyGrace := fs.Duration("key-grace", 10*time.Minute, "keys verified within it keep working while the store cannot be read (0s: none)")
	waitAll := fs.Bool("wait-for-all", true, "acknowledge restrictive changes only once every live instance applied them (else 202)")
	propTimeout := fs.Duration("propagation-timeout", 2*time.Second, "how long a restrictive change waits for every live instance")
	authFail := fs.Float64("auth-fail-rate", 1, "failed authentications allowed per client address per second (burst 30; negative: no limit)")
	proxies := fs.String("trusted-proxies", "", "comma-separated proxy addresses or CIDRs whose X-Forwarded-For names the client")
	logRequests := fs.Bool("log-requests", false, "log every request (method, route, status, duration, request ID, key ID) at info")
	logFormat := fs.String("log-format", "text", "log lines (on stderr) as text or json")
	logRetention := fs.Duration("changelog-retention", 0, "how long changelog entries are kept (default 168h)")
	outRetention := fs.Duration("outcome-retention", 0, "how long outcome events are kept (default 4320h)")
	ledSampling := fs.Float64("ledger-sampling", 1, "share of exposures recorded in the ledger, in (0, 1] (pushes and provisions always)")
	ledQueue := fs.Int("ledger-queue", 8192, "ledger entries waiting to be written before new ones are dropped and counted")
	ledRetention := fs.Duration("ledger-retention", 0, "how long ledger exposures and pushes are kept (default 4320h; provisions at least 3 years)")
	ledMaxLen := fs.Int("ledger-maxlen", 0, "entries kept per shard's ledger stream (default 2000000)")
	excessive := fs.Int("excessive-copies", server.DefaultExcessiveCopies, "copy requests (exports, receipt lists) per user in 30 days before further ones are flagged as excessive (negative: no count)")
	decisionSecretFile := fs.String("decision-secret-file", "", "file holding the secret decision IDs are signed under (default: derived from the chain key; none and --unkeyed-chain: random per process)")
	auditFloor := fs.Int("audit-min-group-size", audit.DefaultMinGroupSizeFloor, fmt.Sprintf("privacy floor of POST /v1/audits: a spec's min_group_size under it runs with it (at least %d)", audit.LowestMinGroupSizeFloor))
	rateLimit := fs.Float64("rate-limit", server.DefaultRateLimit, "requests per second allowed per API key (token bucket; negative: no limit)")
	rateBurst := fs.Int("rate-burst", 0, "the per-key bucket's size (default twice --rate-limit)")
	maxBody := fs.Int64("max-body", server.DefaultMaxBody, "request body limit in bytes of every route but POST /v1/events (413 over it)")
	maxEventsBody := fs.Int64("max-events-body", server.DefaultMaxEventsBody, fmt.Sprintf("body limit in bytes of POST /v1/events: %d events (its batch limit) of %d bytes on average fit the default", server.MaxEventsPerPost, server.EventBytes))
	readTimeout := fs.Duration("read-timeout", server.DefaultReadTimeout, "reading a request, headers and body")
	writeTimeout := fs.Duration("write-timeout", server.DefaultWriteTimeout, "from the end of the request's headers to the end of its answer (at least twice --store-timeout; audits may take 60s)")
	idleTimeout := fs.Duration("idle-timeout", server.DefaultIdleTimeout, "how long a kept-alive connection waits for its next request")
	shutdownTimeout := fs.Duration("shutdown-timeout", 20*time.Second, "on SIGINT or SIGTERM, how long in-flight requests may take to finish")
	if pos, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("serve: unexpected argument %q (flags are --addr, --data, --redis, ...; recguard serve --help lists them)", pos[0])
	}
	switch {
	case *rateLimit == 0:
		return usageErrorf("serve: --rate-limit 0 would refuse every request; give a rate, or a negative one for no limit")
	case *rateBurst < 0:
		return usageErrorf("serve: --rate-burst must not be negative (0: twice --rate-limit)")
	case *maxBody <= 0 || *maxEventsBody <= 0:
		return usageErrorf("serve: --max-body and --max-events-body must be positive")
	case *readTimeout <= 0 || *writeTimeout <= 0 || *idleTimeout <= 0 || *shutdownTimeout <= 0:
		return usageErrorf("serve: --read-timeout, --write-timeout, --idle-timeout and --shutdown-timeout must be positive")
	case *budget <= 0:
		return usageErrorf("serve: --decision-budget must be positive")
	case *storeTimeout <= 0:
		return usageErrorf("serve: --store-timeout must be positive")
	case *keyTTL <= 0:
		return usageErrorf("serve: --key-cache-ttl must be positive")
	case *keyGrace < 0:
		return usageErrorf("serve: --key-grace must not be negative")
	case *propTimeout <= 0:
		return usageErrorf("serve: --propagation-timeout must be positive")
	case *propTimeout > *storeTimeout:
		return usageErrorf("serve: --propagation-timeout must not exceed --store-timeout (the wait for every instance after a restrictive change is bounded by the store timeout too)")
	case *authFail == 0:
		return usageErrorf("serve: --auth-fail-rate 0 would refuse every failed authentication forever; give a rate, or a negative one for no limit")
	case *logRetention < 0 || *outRetention < 0:
		return usageErrorf("serve: --changelog-retention and --outcome-retention must not be negative (0: the store's default)")
	case !(*ledSampling > 0 && *ledSampling <= 1):
		return usageErrorf("serve: --ledger-sampling must be in (0, 1]: 1 records every exposure")
	case *ledQueue < 1:
		return usageErrorf("serve: --ledger-queue must be at least 1")
	case *ledRetention < 0 || *ledMaxLen < 0:
		return usageErrorf("serve: --ledger-retention and --ledger-maxlen must not be negative (0: the store's default)")
	case *excessive == 0:
		return usageErrorf("serve: --excessive-copies 0 would flag every copy request; give a number, or a negative one for no count")
	}
	var trusted []string
	for _, p := range strings.Split(*proxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			trusted = append(trusted, p)
		}
	}
	grace := *keyGrace
	if grace == 0 {
		grace = -1 // the flag's 0 means none; the server's 0 means its default
	}
	log, err := newLogger(*logFormat, stderr)
	if err != nil {
		return usageErrorf("serve: %w", err)
	}
	var decisionSecret []byte
	if *decisionSecretFile != "" {
		if decisionSecret, err = readSecretFile(*decisionSecretFile, "decision secret", "forge decision IDs that verify"); err != nil {
			return fmt.Errorf("serve: --decision-secret-file (RECGUARD_DECISION_SECRET_FILE): %w", err)
		}
	}
	scfg := server.Config{
		DecisionSecret: decisionSecret,
		Logger:         log, LogRequests: *logRequests,
		DecisionBudget: *budget, StoreTimeout: *storeTimeout, KeyCacheTTL: *keyTTL, KeyGrace: grace, WaitForAll: *waitAll,
		AuthFailRate: *authFail, TrustedProxies: trusted, ExcessiveCopies: *excessive,
		AuditMinGroupSize: *auditFloor,
		RateLimit:         *rateLimit, RateBurst: *rateBurst, MaxBody: *maxBody, MaxEventsBody: *maxEventsBody,
		ReadTimeout: *readTimeout, WriteTimeout: *writeTimeout, IdleTimeout: *idleTimeout,
	}
	if err := scfg.Validate(); err != nil {
		return usageErrorf("serve: %s%w", flagOf(err), err)
	}
	// go-redis's own log lines go through slog too, rate-limited.
	goredis.SetLogger(newRedisLogger(log))
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopWithGoRun(log) // killing `go run` stops serve too (gorun.go)

	st, chainKey, closeAll, err := sf.open(ctx, openOptions{cmd: "serve", init: *initStore, acceptDataLoss: *acceptLoss, log: log,
		changelogRetention: *logRetention, outcomeRetention: *outRetention, ledgerRetention: *ledRetention, ledgerMaxLen: *ledMaxLen})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer closeAll()
	ks, err := keyStore(st)
	if err != nil {
		return err
	}
	if all, err := ks.ListKeys(ctx); err != nil {
		return err
	} else if len(all) == 0 {
		key, k, err := server.NewKey(ctx, ks, server.RoleAdmin, "first admin key", time.Now())
		logAdmin(log, "key create", k.ID, err, "role", "admin", "name", "first admin key")
		if errors.Is(err, store.ErrNotReplicated) {
			log.Warn("the first admin key is stored on the primary but not confirmed by the replicas: a failover now could lose it", "key", k.ID, "err", err)
		} else if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "first start: admin key %s (shown once, keep it safe):\n%s\n", k.ID, key)
	}
	ccfg := sdk.Config{Audiences: true, CheckpointEvery: 5 * time.Minute, Lease: *lease, PropagationTimeout: *propTimeout, Logger: log,
		LedgerBuffer: *ledQueue, LedgerSampling: *ledSampling}
	if l, ok := st.(store.Ledger); ok {
		ccfg.Ledger = l // exposures, pushes and provisions (issue 14)
	}
	client, err := sdk.New(ctx, st, ccfg)
	if err != nil {
		return err
	}
	defer client.Close()
	scfg.Client, scfg.Store, scfg.ChainKey = client, st, chainKey
	srv, err := server.New(scfg)
	if err != nil {
		return err
	}
	hs := srv.HTTPServer(*addr)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	go purgeLoop(ctx, st, log)
	decisionIDs := "chain key"
	switch {
	case len(decisionSecret) > 0:
		decisionIDs = "decision secret file"
	case len(chainKey) == 0:
		decisionIDs = "per process"
	}
	log.Info("recguard serving", "addr", ln.Addr().String(), "wait_for_all", *waitAll, "decision_budget", *budget, "store_timeout", *storeTimeout,
		"chain_keyed", len(chainKey) > 0, "decision_ids_signed_by", decisionIDs)
	fmt.Fprintf(stdout, "listening on %s\n", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-ctx.Done():
		log.Info("shutting down: finishing in-flight requests")
		sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil {
			return err
		}
		if cp := client.Checkpoint(sctx); cp != nil && !errors.Is(cp, errors.ErrUnsupported) {
			log.Warn("final checkpoint", "err", cp)
		}
	}
	return nil
}

// purgeLoop deletes receipts past their retention (Art. 12: kept at least
// three years, and no longer), changelog entries past the changelog
// retention and outcome events past the outcome retention, once at start
// and then every hour.
//
// A store written by a release before erasure sealed users' data kept the
// data of the users it erased in clear: the first pass scrubs it
// (ScrubErased, a scan of every shard, once per start).
func purgeLoop(ctx context.Context, st store.Store, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	if sc, ok := st.(interface {
		ScrubErased(context.Context) (int, error)
	}); ok {
		if n, err := sc.ScrubErased(ctx); err != nil && ctx.Err() == nil {
			log.Warn("scrubbing users erased before sealing", "err", err)
		} else if n > 0 {
			log.Info("scrubbed users erased before sealing", "count", n)
		}
	}
	for {
		n, err := st.PurgeExpired(ctx, time.Now())
		if err != nil && ctx.Err() == nil {
			log.Warn("purging expired receipts", "err", err)
		} else if n > 0 {
			log.Info("purged expired receipts", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// flagOf names the serve flag behind a server.ConfigError ("--flag: "),
// or "" when no flag sets the field.
func flagOf(err error) string {
	var ce *server.ConfigError
	if !errors.As(err, &ce) {
		return ""
	}
	if f, ok := map[string]string{
		"DecisionBudget": "--decision-budget", "StoreTimeout": "--store-timeout", "KeyCacheTTL": "--key-cache-ttl",
		"KeyGrace": "--key-grace", "AuthFailRate": "--auth-fail-rate", "TrustedProxies": "--trusted-proxies",
		"ExcessiveCopies": "--excessive-copies", "AuditMinGroupSize": "--audit-min-group-size",
		"DecisionSecret": "--decision-secret-file", "RateLimit": "--rate-limit", "RateBurst": "--rate-burst",
		"MaxBody": "--max-body", "MaxEventsBody": "--max-events-body", "ReadTimeout": "--read-timeout",
		"WriteTimeout": "--write-timeout", "IdleTimeout": "--idle-timeout",
	}[ce.Field]; ok {
		return f + ": "
	}
	return ""
}
