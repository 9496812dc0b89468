package redis

import (
	"crypto/tls"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// ClientOptions are the connection settings of a go-redis client made for a
// Store by NewClient. Zero fields mean the documented defaults, chosen so
// that a slow or dead Redis makes callers fail fast (and so fail closed)
// rather than wait on go-redis's multi-second defaults, and so that a Redis
// Cluster finds a promoted replica quickly.
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
	// DialTimeout bounds connecting. Zero means 500 ms.
	DialTimeout time.Duration
	// Timeout bounds one command's read and write (blocking reads get their
	// block time on top). Zero means 1 s. Callers' contexts bound it
	// further: the client honours context deadlines.
	Timeout time.Duration
	// PoolSize is the connections per node. Zero means 64.
	PoolSize int
	// ClusterReload is how often a cluster client refreshes its slot map
	// even without errors. Zero means 1 s.
	ClusterReload time.Duration
}

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
		return goredis.NewClusterClient(&goredis.ClusterOptions{
			Addrs: o.Addrs, Username: o.Username, Password: o.Password, TLSConfig: o.TLS,
			DialTimeout: o.DialTimeout, ReadTimeout: o.Timeout, WriteTimeout: o.Timeout,
			ContextTimeoutEnabled: true, PoolSize: o.PoolSize,
			ClusterStateReloadInterval: o.ClusterReload,
		})
	}
	addr := "127.0.0.1:6379"
	if len(o.Addrs) == 1 {
		addr = o.Addrs[0]
	}
	return goredis.NewClient(&goredis.Options{
		Addr: addr, Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLS,
		DialTimeout: o.DialTimeout, ReadTimeout: o.Timeout, WriteTimeout: o.Timeout,
		ContextTimeoutEnabled: true, PoolSize: o.PoolSize,
	})
}
