package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

var (
	_ store.BatchGetter    = (*Store)(nil)
	_ store.MultiLogReader = (*Store)(nil)
	_ store.Presence       = (*Store)(nil)
)

// GetMany reads many users' records in one pipelined round trip (on a
// Redis Cluster, one per node).
func (s *Store) GetMany(ctx context.Context, userIDs []string) ([]consent.Record, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	for _, id := range userIDs {
		if err := consent.ValidUserID(id); err != nil {
			return nil, err
		}
	}
	cmds := make([]*goredis.SliceCmd, len(userIDs))
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, id := range userIDs {
			cmds[i] = p.HMGet(ctx, s.k.user(store.ShardOf(id, s.shards), id), "v", "d", "n")
		}
		return nil
	})
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]consent.Record, len(userIDs))
	for i, id := range userIDs {
		rec, _, err := decodeRecord(id, cmds[i].Val())
		if err != nil {
			return nil, err
		}
		out[i] = rec
	}
	return out, nil
}

// ReadLogs follows several logs with one XREAD. On a Redis Cluster it
// returns errors.ErrUnsupported: the logs live in different slots.
func (s *Store) ReadLogs(ctx context.Context, logs []int, after []store.Position, count int, block time.Duration) ([]store.Event, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if _, ok := s.c.(*goredis.ClusterClient); ok {
		return nil, fmt.Errorf("redis store: ReadLogs on a cluster: %w", errors.ErrUnsupported)
	}
	if len(logs) != len(after) || len(logs) == 0 {
		return nil, fmt.Errorf("%w: %d logs with %d positions", store.ErrInvalidPosition, len(logs), len(after))
	}
	if count <= 0 {
		count = 100
	}
	streams := make([]string, 2*len(logs))
	byKey := make(map[string]int, len(logs))
	for i, l := range logs {
		key, err := s.logKey(l)
		if err != nil {
			return nil, err
		}
		if _, err := store.ParsePosition(string(after[i])); err != nil {
			return nil, err
		}
		streams[i] = key
		streams[len(logs)+i] = after[i].String()
		byKey[key] = i
	}
	res, err := s.xread(ctx, streams, count, block)
	if errors.Is(err, goredis.Nil) {
		return nil, ctx.Err()
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, unavailable(err)
	}
	var out []store.Event
	for _, st := range res {
		i, ok := byKey[st.Stream]
		if !ok {
			continue
		}
		if out, err = decodeMessages(out, logs[i], after[i], st.Messages); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (k keys) instances() string { return k.prefix + ":{cfg}:instances" }
func (k keys) applied() string   { return k.prefix + ":{cfg}:applied" }

// Announce registers instance id as live until now+ttl with its applied
// positions.
func (s *Store) Announce(ctx context.Context, id string, applied []store.Position, ttl time.Duration) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := consent.ValidUserID(id); err != nil {
		return fmt.Errorf("instance id: %w", err)
	}
	b, err := json.Marshal(applied)
	if err != nil {
		return err
	}
	now := time.Now()
	_, err = s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.ZAdd(ctx, s.k.instances(), goredis.Z{Score: float64(now.Add(ttl).UnixMilli()), Member: id})
		p.HSet(ctx, s.k.applied(), id, b)
		return nil
	})
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// Instances returns the instances live now.
func (s *Store) Instances(ctx context.Context) ([]store.Instance, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	now := time.Now().UnixMilli()
	zs, err := s.c.ZRangeByScoreWithScores(ctx, s.k.instances(), &goredis.ZRangeBy{Min: strconv.FormatInt(now, 10), Max: "+inf"}).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	if len(zs) == 0 {
		return nil, nil
	}
	ids := make([]string, len(zs))
	for i, z := range zs {
		ids[i], _ = z.Member.(string)
	}
	vals, err := s.c.HMGet(ctx, s.k.applied(), ids...).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]store.Instance, 0, len(zs))
	for i, z := range zs {
		in := store.Instance{ID: ids[i], Expires: time.UnixMilli(int64(z.Score))}
		if v, ok := vals[i].(string); ok {
			_ = json.Unmarshal([]byte(v), &in.Applied)
		}
		out = append(out, in)
	}
	// Forget instances that expired long ago (best effort).
	old := strconv.FormatInt(now-int64(time.Hour/time.Millisecond), 10)
	if gone, err := s.c.ZRangeByScore(ctx, s.k.instances(), &goredis.ZRangeBy{Min: "-inf", Max: "(" + old}).Result(); err == nil && len(gone) > 0 {
		s.c.ZRem(ctx, s.k.instances(), toAny(gone)...)
		s.c.HDel(ctx, s.k.applied(), gone...)
	}
	return out, nil
}

func toAny(xs []string) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

// Leave removes instance id at once.
func (s *Store) Leave(ctx context.Context, id string) error {
	if err := s.check(); err != nil {
		return err
	}
	_, err := s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.ZRem(ctx, s.k.instances(), id)
		p.HDel(ctx, s.k.applied(), id)
		return nil
	})
	if err != nil {
		return unavailable(err)
	}
	return nil
}

var (
	_ store.UserLister   = (*Store)(nil)
	_ store.Checkpointer = (*Store)(nil)
)

// ListUsers returns user IDs of shard by local number, from `from` on.
func (s *Store) ListUsers(ctx context.Context, shard, from, count int) ([]string, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if shard < 0 || shard >= s.shards || from < 1 || count < 1 {
		return nil, fmt.Errorf("%w: shard %d from %d count %d", store.ErrInvalidPosition, shard, from, count)
	}
	ids, err := s.c.LRange(ctx, s.k.users(shard), int64(from-1), int64(from-1+count-1)).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	return ids, nil
}

// checkpointChunk bounds one value of a saved checkpoint, so a large one
// never makes a single huge Redis command or value.
const checkpointChunk = 8 << 20

func (k keys) checkpoint(name string) string { return k.prefix + ":{ckpt}:" + name }

// SaveCheckpoint stores data under name in chunks, replacing what was there
// atomically (MULTI in one slot).
func (s *Store) SaveCheckpoint(ctx context.Context, name string, data []byte) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := consent.ValidChannelName(name); err != nil {
		return fmt.Errorf("checkpoint name: %w", err)
	}
	key := s.k.checkpoint(name)
	_, err := s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Del(ctx, key)
		for off := 0; off < len(data) || off == 0; off += checkpointChunk {
			end := min(off+checkpointChunk, len(data))
			p.RPush(ctx, key, data[off:end])
			if end == len(data) {
				break
			}
		}
		return nil
	})
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// LoadCheckpoint returns the data saved under name, or store.ErrNotFound.
func (s *Store) LoadCheckpoint(ctx context.Context, name string) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := consent.ValidChannelName(name); err != nil {
		return nil, fmt.Errorf("checkpoint name: %w", err)
	}
	parts, err := s.c.LRange(ctx, s.k.checkpoint(name), 0, -1).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("%w: checkpoint %q", store.ErrNotFound, name)
	}
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out, nil
}
