package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// ClientOptions are the connection settings of a go-redis client made for a
// Store by NewClient. Zero fields mean the documented defaults, chosen so
// that a slow or dead Redis makes callers fail fast (and so fail closed)
// rather than wait on go-redis's multi-second defaults, and so that a Redis
// Cluster finds a promoted replica quickly. The chaos suite (package chaos,
// docs/chaos.md) measures what they give.
type ClientOptions struct {
	// Addrs is one address for a single Redis, several for a Redis Cluster
	// (seed nodes); Cluster forces a cluster client for one seed address.
	Addrs   []string
	Cluster bool
	// Username, Password and DB authenticate and select the database (DB:
	// single Redis only).
	Username, Password string
	DB                 int
	// TLS, when set, is used for every connection.
	TLS *tls.Config
	// DialTimeout bounds one connection attempt. Zero means 500 ms. A failed
	// attempt is retried twice, 50 ms apart (go-redis: 4 times, 100 ms
	// apart), so a refused connection fails in about 100 ms, and a short
	// outage does not trip go-redis's dial breaker (after PoolSize failed
	// dials it refuses to dial until a background probe, once a second,
	// gets through): measured, a Redis restarted after 1.8 s is answering
	// the SDK again after 40-90 ms instead of 700-900 ms with no retry.
	DialTimeout time.Duration
	// Timeout bounds one command's read and write. A blocking read (XREAD
	// BLOCK) gets its block time on top, and no more: go-redis alone would
	// wait block + 10 s for a reply that a dead link never brings. Zero
	// means 1 s. Callers' contexts bound it further: the client honours
	// context deadlines.
	Timeout time.Duration
	// PoolSize is the connections per node. Zero means 64.
	PoolSize int
	// ClusterReload is how often a cluster client refreshes its slot map
	// even without errors. Zero means 1 s. Independently of it, a command
	// that fails on a connection error, a timeout, CLUSTERDOWN, TRYAGAIN,
	// MASTERDOWN, LOADING or READONLY makes the client reload the slot map at
	// once (go-redis alone reloads only on MOVED and ASK, so a killed
	// master's slots stay pointed at it until the next periodic refresh).
	ClusterReload time.Duration
}

// A failed connection attempt is retried (see ClientOptions.DialTimeout).
const (
	dialAttempts   = 3
	dialRetryPause = 50 * time.Millisecond
)

// NewClient returns a go-redis client (a *goredis.Client, or a
// *goredis.ClusterClient for a cluster) set up from o. The caller closes it.
func NewClient(o ClientOptions) goredis.UniversalClient {
	if o.DialTimeout == 0 {
		o.DialTimeout = 500 * time.Millisecond
	}
	if o.Timeout == 0 {
		o.Timeout = time.Second
	}
	if o.PoolSize == 0 {
		o.PoolSize = 64
	}
	if o.ClusterReload == 0 {
		o.ClusterReload = time.Second
	}
	if o.Cluster || len(o.Addrs) > 1 {
		cc := goredis.NewClusterClient(&goredis.ClusterOptions{
			Addrs: o.Addrs, Username: o.Username, Password: o.Password, TLSConfig: o.TLS,
			DialTimeout: o.DialTimeout, DialerRetries: dialAttempts, DialerRetryTimeout: dialRetryPause, ReadTimeout: o.Timeout, WriteTimeout: o.Timeout,
			ContextTimeoutEnabled: true, PoolSize: o.PoolSize,
			ClusterStateReloadInterval: o.ClusterReload,
		})
		cc.AddHook(clientHook{timeout: o.Timeout, cluster: cc})
		return cc
	}
	addr := "127.0.0.1:6379"
	if len(o.Addrs) == 1 {
		addr = o.Addrs[0]
	}
	c := goredis.NewClient(&goredis.Options{
		Addr: addr, Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLS,
		DialTimeout: o.DialTimeout, DialerRetries: dialAttempts, DialerRetryTimeout: dialRetryPause, ReadTimeout: o.Timeout, WriteTimeout: o.Timeout,
		ContextTimeoutEnabled: true, PoolSize: o.PoolSize,
	})
	c.AddHook(clientHook{timeout: o.Timeout})
	return c
}

// clientHook bounds blocking reads by block + timeout and, on a cluster,
// reloads the slot map as soon as a command fails in a way that may mean
// the topology changed.
type clientHook struct {
	timeout time.Duration
	cluster *goredis.ClusterClient // nil for a single Redis
}

func (h clientHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h clientHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		if block, ok := blockOf(cmd); ok {
			limit := block + h.timeout
			if dl, has := ctx.Deadline(); !has || time.Until(dl) > limit {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, limit)
				defer cancel()
			}
		}
		err := next(ctx, cmd)
		if h.cluster != nil && topologyError(err) {
			h.cluster.ReloadState(ctx)
		}
		return err
	}
}

func (h clientHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		err := next(ctx, cmds)
		if h.cluster != nil {
			reload := topologyError(err)
			for _, c := range cmds {
				reload = reload || topologyError(c.Err())
			}
			if reload {
				h.cluster.ReloadState(ctx)
			}
		}
		return err
	}
}

// blockOf returns the BLOCK time of an XREAD or XREADGROUP command, when it
// blocks for a bounded time.
func blockOf(cmd goredis.Cmder) (time.Duration, bool) {
	switch cmd.Name() {
	case "xread", "xreadgroup":
	default:
		return 0, false
	}
	args := cmd.Args()
	for i := 1; i+1 < len(args); i++ {
		if s, ok := args[i].(string); !ok || !strings.EqualFold(s, "block") {
			continue
		}
		var ms int64
		switch v := args[i+1].(type) {
		case int64:
			ms = v
		case int:
			ms = int64(v)
		case string:
			ms, _ = strconv.ParseInt(v, 10, 64)
		}
		if ms <= 0 {
			return 0, false // BLOCK 0 waits forever: the caller's context decides
		}
		return time.Duration(ms) * time.Millisecond, true
	}
	return 0, false
}

// topologyError reports whether err may mean that a node is gone or no
// longer serves its slots: the slot map is worth reloading.
func topologyError(err error) bool {
	if err == nil || errors.Is(err, goredis.Nil) || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var re goredis.Error
	if errors.As(err, &re) {
		msg := re.Error()
		for _, p := range []string{"CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "LOADING", "READONLY"} {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
	}
	return false
}
