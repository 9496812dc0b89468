// Command recguard runs recguard's companion server and its tools.
//
//	recguard serve [--addr :8080] [--data ./recguard-data | --redis redis://host:port/0 | --redis-cluster host:port,...]
//	recguard keys create --role app|admin|auditor [--name NAME] [store flags]
//	recguard keys revoke ID [store flags]
//	recguard keys list [store flags]
//
// With no store flag it uses the embedded store in --data, which survives
// restarts. On first start, serve prints an admin key once.
package main

import (
	"context"
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

	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/server"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	rs "github.com/recguard/recguard/store/redis"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "recguard:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  recguard serve [--addr :8080] [store flags]
  recguard keys create --role app|admin|auditor [--name NAME] [store flags]
  recguard keys revoke ID [store flags]
  recguard keys list [store flags]
  recguard audit --spec spec.yaml --events events.jsonl [--users users.jsonl | store flags] [--format html|json|csv] [--out FILE] [--strict]

store flags:
  --data DIR               embedded store directory (default ./recguard-data)
  --redis URL              a Redis, e.g. redis://127.0.0.1:6379/0
  --redis-cluster ADDRS    a Redis Cluster, e.g. 10.0.0.1:6379,10.0.0.2:6379
  --prefix P               Redis key prefix (default rg)
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "keys":
		if len(args) < 2 {
			fmt.Fprint(stderr, usage)
			return errors.New("keys: want create, revoke or list")
		}
		return keys(ctx, args[1], args[2:], stdout, stderr)
	case "audit":
		return auditCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// storeFlags are the flags that choose the store.
type storeFlags struct {
	data, redisURL, cluster, prefix string
}

func (sf *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&sf.data, "data", "./recguard-data", "embedded store directory")
	fs.StringVar(&sf.redisURL, "redis", "", "Redis URL (redis://host:port/db)")
	fs.StringVar(&sf.cluster, "redis-cluster", "", "comma-separated Redis Cluster addresses")
	fs.StringVar(&sf.prefix, "prefix", "", "Redis key prefix (default rg)")
}

// open opens the chosen store; closeAll releases it (and its client).
func (sf *storeFlags) open(ctx context.Context) (st store.Store, closeAll func(), err error) {
	var c goredis.UniversalClient
	switch {
	case sf.redisURL != "" && sf.cluster != "":
		return nil, nil, errors.New("give --redis or --redis-cluster, not both")
	case sf.redisURL != "":
		opts, err := goredis.ParseURL(sf.redisURL)
		if err != nil {
			return nil, nil, fmt.Errorf("--redis: %w", err)
		}
		opts.PoolSize = max(opts.PoolSize, 64)
		c = goredis.NewClient(opts)
	case sf.cluster != "":
		c = goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: strings.Split(sf.cluster, ",")})
	default:
		ms, err := memory.Open(ctx, memory.Options{Dir: sf.data})
		if err != nil {
			return nil, nil, err
		}
		return ms, func() { ms.Close() }, nil
	}
	s, err := rs.New(ctx, c, rs.Options{Prefix: sf.prefix})
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return s, func() { s.Close(); c.Close() }, nil
}

func keyStore(st store.Store) (store.KeyStore, error) {
	ks, ok := st.(store.KeyStore)
	if !ok {
		return nil, errors.New("this store keeps no API keys")
	}
	return ks, nil
}

// parseInterspersed parses the flags in args wherever they are, so that
// "keys revoke ID --redis URL" (as the usage shows) reads --redis; the flag
// package alone stops at the first argument that is not a flag. It returns
// the other arguments; everything after "--" is one of them.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func keys(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	sf.register(fs)
	role := fs.String("role", "", "role of the new key: app, admin or auditor")
	name := fs.String("name", "", "a name for people")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if sub != "revoke" && len(pos) > 0 {
		return fmt.Errorf("keys %s: unexpected argument %q", sub, pos[0])
	}
	st, closeAll, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer closeAll()
	ks, err := keyStore(st)
	if err != nil {
		return err
	}
	switch sub {
	case "create":
		key, k, err := server.NewKey(ctx, ks, server.Role(*role), *name, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "created %s key %s (shown once; only its hash is stored)\n", k.Role, k.ID)
		fmt.Fprintln(stdout, key)
	case "revoke":
		if len(pos) != 1 {
			return errors.New("keys revoke: give the key ID")
		}
		if err := server.RevokeKey(ctx, ks, pos[0], time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s\n", pos[0])
	case "list":
		all, err := ks.ListKeys(ctx)
		if err != nil {
			return err
		}
		for _, k := range all {
			state := "active"
			if k.Revoked() {
				state = "revoked " + k.RevokedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Role, k.CreatedAt.Format(time.RFC3339), state, k.Name)
		}
	default:
		return fmt.Errorf("keys: unknown subcommand %q", sub)
	}
	return nil
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	sf.register(fs)
	addr := fs.String("addr", ":8080", "listen address")
	lease := fs.Duration("lease", 0, "how long answers trust the cache without a confirmed changelog read (default 2s)")
	if pos, err := parseInterspersed(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("serve: unexpected argument %q (flags are --addr, --data, --redis, ...)", pos[0])
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	st, closeAll, err := sf.open(ctx)
	if err != nil {
		return err
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
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "first start: admin key %s (shown once, keep it safe):\n%s\n", k.ID, key)
	}
	client, err := sdk.New(ctx, st, sdk.Config{Audiences: true, CheckpointEvery: 5 * time.Minute, Lease: *lease})
	if err != nil {
		return err
	}
	defer client.Close()
	srv, err := server.New(server.Config{Client: client, Store: st})
	if err != nil {
		return err
	}
	hs := srv.HTTPServer(*addr)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	go purgeLoop(ctx, st, log)
	log.Info("recguard serving", "addr", ln.Addr().String())
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
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
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
// three years, and no longer) once at start and then every hour.
func purgeLoop(ctx context.Context, st store.Store, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
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
