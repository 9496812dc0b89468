package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/store"
)

// The keyspace's identity. When a keyspace is initialised it gets a random
// epoch, written to rg:{cfg}:meta and, as field "e", to every changelog
// counter hash (rg:{<s>}:seq and rg:{cfg}:seq). Every write script checks
// the marker of its slot, every read of records and every empty changelog
// read checks it too: a slot that lost its data (a node restarted without
// persistence, a flush, a replaced keyspace) has no marker, or another one,
// and so is reported as store.ErrDataLoss instead of being taken for a new,
// empty store whose users all start personalized.

func newEpoch() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// open reads or creates the keyspace's identity (shard count and epoch) and
// checks that every slot still carries it.
func (s *Store) open(ctx context.Context, opts Options) error {
	vals, err := s.c.HMGet(ctx, s.k.meta(), "shards", "epoch").Result()
	if err != nil {
		return unavailable(err)
	}
	shardsStr, _ := vals[0].(string)
	epoch, _ := vals[1].(string)
	want := opts.Shards
	if want == 0 {
		want = store.DefaultShards
	}
	switch {
	case shardsStr == "":
		// No meta. Either a new keyspace, or one whose {cfg} slot lost its
		// data while the shards still hold users.
		held, err := s.shardsHoldingData(ctx, want)
		if err != nil {
			return err
		}
		if len(held) > 0 && !opts.AcceptDataLoss {
			return &store.DataLossError{Logs: []int{store.SettingsLog}, Detail: fmt.Sprintf("keyspace %q has no identity (rg:{cfg}:meta is gone) but shards %v hold data: restore the keyspace from a backup, or accept the loss explicitly", s.k.prefix, held)}
		}
		if len(held) == 0 && !opts.Init {
			return fmt.Errorf("%w: keyspace %q on this Redis is empty; initialising it is an explicit act (Options.Init, `recguard serve --init`): do it only for a new deployment, never after a Redis lost its data", store.ErrNotInitialized, s.k.prefix)
		}
		epoch = newEpoch()
		ok, err := initMetaScript.Run(ctx, s.c, []string{s.k.meta()}, want, epoch).Int()
		if err != nil {
			return unavailable(err)
		}
		if ok == 0 { // someone else initialised it meanwhile: take theirs
			return s.open(ctx, Options{Shards: opts.Shards, AcceptDataLoss: opts.AcceptDataLoss})
		}
		if len(held) > 0 {
			s.log.Warn("redis store: data loss accepted: the keyspace's identity was gone; a new one was written", "prefix", s.k.prefix, "shards_with_data", held)
		}
		s.shards, s.epoch = want, epoch
		if err := s.markAll(ctx, true); err != nil {
			return err
		}
		return s.initSettings(ctx)
	case epoch == "":
		// A keyspace made before identities existed: give it one now (it is
		// in use and still there, so this is adoption, not initialisation).
		n, err := strconv.Atoi(shardsStr)
		if err != nil || n < 1 {
			return &store.DataLossError{Logs: []int{store.SettingsLog}, Detail: "rg:{cfg}:meta holds no valid shard count"}
		}
		if _, err := s.c.HSetNX(ctx, s.k.meta(), "epoch", newEpoch()).Result(); err != nil {
			return unavailable(err)
		}
		if epoch, err = s.c.HGet(ctx, s.k.meta(), "epoch").Result(); err != nil {
			return unavailable(err)
		}
		s.shards, s.epoch = n, epoch
		if err := s.markAll(ctx, false); err != nil {
			return err
		}
	default:
		n, err := strconv.Atoi(shardsStr)
		if err != nil || n < 1 {
			return &store.DataLossError{Logs: []int{store.SettingsLog}, Detail: "rg:{cfg}:meta holds no valid shard count"}
		}
		s.shards, s.epoch = n, epoch
	}
	if opts.Shards != 0 && s.shards != opts.Shards {
		return fmt.Errorf("redis store: keyspace %q has %d shards, options ask for %d", s.k.prefix, s.shards, opts.Shards)
	}
	lost, err := s.lostLogs(ctx)
	if err != nil {
		return err
	}
	if len(lost) > 0 {
		if !opts.AcceptDataLoss {
			return &store.DataLossError{Logs: lost, Detail: fmt.Sprintf("keyspace %q: these slots lost their data (identity marker gone or replaced): restore them from a backup, or accept the loss explicitly", s.k.prefix)}
		}
		s.log.Warn("redis store: data loss accepted: marking lost slots anew; their users start from empty records", "prefix", s.k.prefix, "logs", lost)
		if err := s.mark(ctx, lost, true); err != nil {
			return err
		}
		if lost[len(lost)-1] == store.SettingsLog {
			if err := s.initSettings(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// initSettings stores the default settings unless some exist.
func (s *Store) initSettings(ctx context.Context) error {
	def := defaultSettingsJSON()
	if err := initSettingsScript.Run(ctx, s.c, []string{s.k.settings()}, def).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// seqKey is the counter hash of log (a shard or store.SettingsLog), which
// carries the identity marker of its slot.
func (s *Store) seqKey(log int) string {
	if log == store.SettingsLog {
		return s.k.settingsSeq()
	}
	return s.k.seq(log)
}

// allLogs lists every shard, then store.SettingsLog.
func (s *Store) allLogs() []int {
	out := make([]int, 0, s.shards+1)
	for i := 0; i < s.shards; i++ {
		out = append(out, i)
	}
	return append(out, store.SettingsLog)
}

// markAll writes the identity marker on every slot; with force it replaces
// another marker, otherwise only missing ones are written.
func (s *Store) markAll(ctx context.Context, force bool) error {
	return s.mark(ctx, s.allLogs(), force)
}

func (s *Store) mark(ctx context.Context, logs []int, force bool) error {
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, l := range logs {
			if force {
				p.HSet(ctx, s.seqKey(l), "e", s.epoch)
			} else {
				p.HSetNX(ctx, s.seqKey(l), "e", s.epoch)
			}
		}
		return nil
	})
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// lostLogs returns the logs whose slot lacks the store's identity marker.
func (s *Store) lostLogs(ctx context.Context) ([]int, error) {
	logs := s.allLogs()
	cmds := make([]*goredis.StringCmd, len(logs))
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, l := range logs {
			cmds[i] = p.HGet(ctx, s.seqKey(l), "e")
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, unavailable(err)
	}
	var lost []int
	for i, l := range logs {
		if cmds[i].Val() != s.epoch {
			lost = append(lost, l)
		}
	}
	return lost, nil
}

// shardsHoldingData returns the shards (of n) that hold any recguard data:
// a changelog, a counter, a user list.
func (s *Store) shardsHoldingData(ctx context.Context, n int) ([]int, error) {
	cmds := make([]*goredis.IntCmd, n)
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i := 0; i < n; i++ {
			cmds[i] = p.Exists(ctx, s.k.seq(i), s.k.log(i), s.k.users(i))
		}
		return nil
	})
	if err != nil {
		return nil, unavailable(err)
	}
	var held []int
	for i := range cmds {
		if cmds[i].Val() > 0 {
			held = append(held, i)
		}
	}
	return held, nil
}

// checkConfig refuses an evicting maxmemory-policy (unless allowed) and
// warns when the server persists nothing. CONFIG may be disabled (managed
// Redis): then nothing can be checked and a warning says so.
func (s *Store) checkConfig(ctx context.Context, opts Options) error {
	check := func(ctx context.Context, c goredis.UniversalClient, addr string) error {
		m, err := c.ConfigGet(ctx, "*").Result()
		if err != nil || len(m) == 0 {
			m = map[string]string{}
			for _, k := range []string{"maxmemory-policy", "appendonly", "save", "appendfsync"} {
				kv, err := c.ConfigGet(ctx, k).Result()
				if err != nil {
					s.log.Warn("redis store: cannot read the server's configuration; make sure it persists data and never evicts keys", "node", addr, "err", err)
					return nil
				}
				for k, v := range kv {
					m[k] = v
				}
			}
		}
		if pol := m["maxmemory-policy"]; strings.HasPrefix(pol, "allkeys-") {
			if !opts.AllowEvicting {
				return fmt.Errorf("%w: node %s has maxmemory-policy %s: Redis may evict consent records and forget opt-outs; set noeviction (or a volatile-* policy), or allow it explicitly", store.ErrUnsafeConfig, addr, pol)
			}
			s.log.Warn("redis store: evicting maxmemory-policy allowed by option: evicted records fail closed as unknown users", "node", addr, "policy", pol)
		}
		if m["appendonly"] != "yes" && strings.TrimSpace(m["save"]) == "" {
			s.log.Warn("redis store: the server persists nothing (appendonly no, no save points): a restart loses every record; recguard will then refuse to serve (data loss) until the keyspace is restored", "node", addr)
		} else if m["appendonly"] == "yes" && m["appendfsync"] != "always" {
			s.log.Info("redis store: appendfsync is not always: a crash of the primary may lose the last second of acknowledged writes", "node", addr, "appendfsync", m["appendfsync"])
		}
		return nil
	}
	if cc, ok := s.c.(*goredis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, n *goredis.Client) error {
			return check(ctx, n, n.Options().Addr)
		})
	}
	addr := ""
	if c, ok := s.c.(*goredis.Client); ok {
		addr = c.Options().Addr
	}
	return check(ctx, s.c, addr)
}
