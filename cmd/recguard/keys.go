package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/recguard/recguard/server"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
)

const keysUsage = `usage:
  recguard keys create --role app|admin|auditor [--name NAME] [--server URL --admin-key KEY | store flags]
  recguard keys list [--server URL --admin-key KEY | store flags]
  recguard keys revoke ID [--server URL --admin-key KEY | store flags]

Makes, lists and revokes API keys. A new key is printed once on standard
output (only its hash is stored).

With --server (RECGUARD_SERVER) the command goes through a running
recguard serve's admin routes (POST, GET /v1/admin/keys, DELETE
/v1/admin/keys/{id}) with an admin key (--admin-key, better
RECGUARD_ADMIN_KEY: a flag shows in ps). That is the way while serve runs
on the embedded store, which it locks. Without --server the command opens
the store itself: a Redis store at any time, the embedded store only while
serve is stopped. keys list and keys revoke never create a store; keys
create makes the embedded store (and its chain key) when there is none.
recguard keys create --help lists the flags with their environment variables.
`

// keysHTTPTimeout bounds one request of keys --server.
const keysHTTPTimeout = 30 * time.Second

// keys runs `recguard keys` with args (the subcommand first).
func keys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return usageErrorf("keys: want create, list or revoke")
	}
	sub := args[0]
	switch sub {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, keysUsage)
		return nil
	case "create", "list", "revoke":
	default:
		fmt.Fprint(stderr, keysUsage)
		return usageErrorf("keys: unknown subcommand %q (want create, list or revoke)", sub)
	}
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), keysUsage+"\nflags:\n")
		printFlags(fs.Output(), fs)
	}
	var sf storeFlags
	sf.register(fs)
	var role, name *string
	if sub == "create" {
		role = fs.String("role", "", "role of the new key: app, admin or auditor (required)")
		name = fs.String("name", "", "a name for people")
	}
	logFormat := fs.String("log-format", "text", "log lines (on stderr) as text or json")
	serverURL := fs.String("server", "", "a running recguard serve to go through (http://host:port), instead of opening the store")
	adminKey := fs.String("admin-key", "", "the admin key for --server (prefer RECGUARD_ADMIN_KEY: a flag shows in ps)")
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		return err
	}
	switch {
	case sub != "revoke" && len(pos) > 0:
		return usageErrorf("keys %s: unexpected argument %q", sub, pos[0])
	case sub == "revoke" && len(pos) != 1:
		return usageErrorf("keys revoke: give the key ID (one; keys list shows them)")
	case sub == "create" && !server.Role(*role).Valid():
		return usageErrorf("keys create: --role %q: want app, admin or auditor", *role)
	}
	log, err := newLogger(*logFormat, stderr)
	if err != nil {
		return usageErrorf("keys: %v", err)
	}
	if *serverURL != "" {
		given := ""
		fs.Visit(func(f *flag.Flag) {
			if isStoreFlag(f.Name) {
				given = f.Name
			}
		})
		if given != "" {
			return usageErrorf("keys: give --server or store flags (--%s), not both", given)
		}
		rk, err := newRemoteKeys(*serverURL, *adminKey)
		if err != nil {
			return err
		}
		switch sub {
		case "create":
			return rk.create(ctx, *role, *name, stdout, stderr)
		case "revoke":
			return rk.revoke(ctx, pos[0], stdout)
		}
		return rk.list(ctx, stdout)
	}
	if *adminKey != "" {
		return usageErrorf("keys: --admin-key (RECGUARD_ADMIN_KEY) goes with --server (RECGUARD_SERVER): without it the command opens the store itself")
	}

	embedded := sf.redisURL == "" && sf.cluster == ""
	if embedded && sub != "create" && !storeExists(sf.data) {
		// Opening it would create an empty store (and a key for it).
		return fmt.Errorf("keys %s: no store at %s (no %s in it): give --data DIR of an existing store, the Redis flags, or --server URL of a running recguard serve",
			sub, sf.data, memoryDataFile)
	}
	// Never Init: a keyspace is created by serve --init only.
	st, _, closeAll, err := sf.open(ctx, openOptions{cmd: "keys", log: log})
	if errors.Is(err, memory.ErrLocked) {
		return fmt.Errorf("keys %s: %w\nthe embedded store in %s is locked by a running recguard serve: go through it with "+
			"--server http://ADDR --admin-key KEY (or RECGUARD_SERVER and RECGUARD_ADMIN_KEY), or stop serve first", sub, err, sf.data)
	}
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
		logAdmin(log, "key create", k.ID, err, "role", *role, "name", *name)
		if errors.Is(err, store.ErrNotReplicated) {
			fmt.Fprintf(stderr, "warning: key %s is stored on the primary but not confirmed by the replicas: a failover now could lose it (%v)\n", k.ID, err)
		} else if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "created %s key %s (shown once; only its hash is stored)\n", k.Role, k.ID)
		fmt.Fprintln(stdout, key)
	case "revoke":
		err := server.RevokeKey(ctx, ks, pos[0], time.Now())
		logAdmin(log, "key revoke", pos[0], err)
		if err != nil && !errors.Is(err, store.ErrNotReplicated) {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s\n", pos[0])
	case "list":
		all, err := ks.ListKeys(ctx)
		if err != nil {
			return err
		}
		for _, k := range all {
			printKey(stdout, k.ID, k.Role, k.Name, k.CreatedAt, k.RevokedAt)
		}
	}
	return nil
}

// printKey prints one line of keys list: ID, role, created, state, name.
func printKey(w io.Writer, id, role, name string, created, revoked time.Time) {
	state := "active"
	if !revoked.IsZero() {
		state = "revoked " + revoked.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", id, role, created.UTC().Format(time.RFC3339), state, name)
}

// isStoreFlag reports whether name is one of the store flags (storeFlags).
func isStoreFlag(name string) bool {
	switch name {
	case "data", "redis", "redis-cluster", "prefix", "redis-username", "redis-password", "redis-tls", "redis-tls-ca",
		"redis-timeout", "redis-dial-timeout", "allow-evicting", "durability-replicas", "durability-timeout",
		"chain-key", "chain-key-file", "unkeyed-chain":
		return true
	}
	return false
}

// remoteKeys makes, lists and revokes keys through a running server's
// admin routes.
type remoteKeys struct {
	base, key string
	hc        *http.Client
}

func newRemoteKeys(base, key string) (*remoteKeys, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, usageErrorf("keys: --server %q: want the server's base URL, http://host:port or https://host:port", base)
	}
	if key == "" {
		return nil, usageErrorf("keys: --server needs an admin key: set RECGUARD_ADMIN_KEY (or --admin-key, which shows in ps)")
	}
	return &remoteKeys{base: strings.TrimSuffix(base, "/"), key: key, hc: &http.Client{Timeout: keysHTTPTimeout}}, nil
}

// do sends one request and decodes a 2xx answer into out; any other
// answer is an error naming the server's problem.
func (r *remoteKeys) do(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+r.key)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("keys: %s %s: %w", method, r.base+path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("keys: %s %s: reading the answer: %w", method, r.base+path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var p server.Problem
		if json.Unmarshal(b, &p) == nil && p.Title != "" {
			msg := p.Title
			if p.Detail != "" {
				msg += ": " + p.Detail
			}
			return resp.StatusCode, fmt.Errorf("keys: the server answered %d: %s", resp.StatusCode, msg)
		}
		return resp.StatusCode, fmt.Errorf("keys: the server answered %s", resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("keys: the server's answer is not what keys expects (is %s a recguard server?): %w", r.base, err)
		}
	}
	return resp.StatusCode, nil
}

func (r *remoteKeys) create(ctx context.Context, role, name string, stdout, stderr io.Writer) error {
	var made server.KeyCreated
	status, err := r.do(ctx, "POST", "/v1/admin/keys", server.KeyRequest{Role: role, Name: name}, &made)
	if err != nil {
		return err
	}
	if made.Key == "" {
		return errors.New("keys: the server answered no key")
	}
	if status == http.StatusAccepted {
		fmt.Fprintf(stderr, "warning: key %s is stored on the primary but not confirmed by the replicas: a failover now could lose it\n", made.ID)
	}
	fmt.Fprintf(stderr, "created %s key %s through %s (shown once; only its hash is stored)\n", made.Role, made.ID, r.base)
	fmt.Fprintln(stdout, made.Key)
	return nil
}

func (r *remoteKeys) revoke(ctx context.Context, id string, stdout io.Writer) error {
	if _, err := r.do(ctx, "DELETE", "/v1/admin/keys/"+url.PathEscape(id), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked %s\n", id)
	return nil
}

func (r *remoteKeys) list(ctx context.Context, stdout io.Writer) error {
	var all server.KeysResponse
	if _, err := r.do(ctx, "GET", "/v1/admin/keys", nil, &all); err != nil {
		return err
	}
	for _, k := range all.Keys {
		var revoked time.Time
		if k.RevokedAt != nil {
			revoked = *k.RevokedAt
		}
		printKey(stdout, k.ID, k.Role, k.Name, k.CreatedAt, revoked)
	}
	return nil
}
