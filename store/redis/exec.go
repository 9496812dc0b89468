package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

// evalWrite runs a write script on the slot of keys[0] and, with
// Options.Durability.Replicas > 0, WAITs on the same connection until that
// many replicas received it. It returns the script's reply; err wraps
// store.ErrNotReplicated (with the reply) when too few replicas confirmed.
func (s *Store) evalWrite(ctx context.Context, sc *goredis.Script, keys []string, args ...any) ([]any, error) {
	if s.dur.Replicas <= 0 {
		res, err := sc.Run(ctx, s.c, keys, args...).Slice()
		if err != nil {
			return nil, unavailable(err)
		}
		return res, nil
	}
	var node goredis.Cmdable = s.c
	if cc, ok := s.c.(*goredis.ClusterClient); ok {
		n, err := cc.MasterForKey(ctx, keys[0])
		if err != nil {
			return nil, unavailable(err)
		}
		node = n
	}
	run := func(sha bool) (*goredis.Cmd, *goredis.Cmd, error) {
		var ev *goredis.Cmd
		var w *goredis.Cmd
		// One pipeline is one connection: WAIT counts the replicas that
		// acknowledged this connection's writes.
		_, err := node.Pipelined(ctx, func(p goredis.Pipeliner) error {
			if sha {
				ev = sc.EvalSha(ctx, p, keys, args...)
			} else {
				ev = sc.Eval(ctx, p, keys, args...)
			}
			w = p.Do(ctx, "WAIT", s.dur.Replicas, s.dur.Timeout.Milliseconds())
			return nil
		})
		return ev, w, err
	}
	ev, w, err := run(true)
	if err != nil && ev != nil && isNoScript(ev.Err()) {
		ev, w, err = run(false)
	}
	if ev == nil || ev.Err() != nil {
		if ev != nil {
			err = ev.Err()
		}
		return nil, unavailable(err)
	}
	res, err := ev.Slice()
	if err != nil {
		return nil, unavailable(err)
	}
	if ok, _ := res[0].(int64); ok != 1 {
		return res, nil // nothing written: nothing to wait for
	}
	got, werr := w.Int64()
	if werr != nil {
		return res, fmt.Errorf("%w: WAIT failed: %w", store.ErrNotReplicated, werr)
	}
	if int(got) < s.dur.Replicas {
		return res, fmt.Errorf("%w: %d of %d replicas confirmed within %v", store.ErrNotReplicated, got, s.dur.Replicas, s.dur.Timeout)
	}
	return res, nil
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// readShard reads the records of ids, all of one shard, with the shard's
// identity check, in one script call queued on p. decode turns the reply
// into records once the pipeline ran.
func (s *Store) readShard(ctx context.Context, p goredis.Pipeliner, shard int, ids []string) *goredis.Cmd {
	keys := make([]string, 1, 1+2*len(ids))
	keys[0] = s.k.seq(shard)
	for _, id := range ids {
		keys = append(keys, s.k.user(shard, id), s.k.receipts(shard, id))
	}
	return readScript.EvalSha(ctx, p, keys, s.epoch)
}

// decodeShard turns readShard's reply into records (into out[idx[i]]) and
// returns the users whose record is missing or corrupt.
func decodeShard(shard int, ids []string, idx []int, reply []any, out []consent.Record) ([]string, error) {
	if len(reply) == 0 {
		return nil, unavailable(errors.New("empty reply"))
	}
	if ok, _ := reply[0].(int64); ok != 1 {
		return nil, &store.DataLossError{Logs: []int{shard}, Detail: "the shard's identity marker is gone or replaced"}
	}
	if len(reply) < 1+5*len(ids) {
		return nil, unavailable(fmt.Errorf("short reply: %d values for %d users", len(reply), len(ids)))
	}
	var bad []string
	for i, id := range ids {
		vals := reply[1+5*i : 1+5*i+4]
		rexists, _ := reply[1+5*i+4].(int64)
		rec, _, err := decodeRecord(id, vals)
		switch {
		case err != nil:
			bad = append(bad, id)
			rec = consent.NewRecord(id)
		case rec.Version == 0 && rexists == 1:
			bad = append(bad, id)
		}
		out[idx[i]] = rec
	}
	return bad, nil
}

// getUsers reads the records of userIDs (valid IDs), shard by shard, in one
// pipelined round trip (one per node on a cluster). Users whose record is
// missing or corrupt come back as empty records and are named in a
// *store.CorruptError returned with the records.
func (s *Store) getUsers(ctx context.Context, userIDs []string) ([]consent.Record, error) {
	byShard := map[int][]int{}
	for i, id := range userIDs {
		sh := store.ShardOf(id, s.shards)
		byShard[sh] = append(byShard[sh], i)
	}
	type call struct {
		shard int
		ids   []string
		idx   []int
		cmd   *goredis.Cmd
	}
	calls := make([]call, 0, len(byShard))
	for sh, idx := range byShard {
		ids := make([]string, len(idx))
		for j, i := range idx {
			ids[j] = userIDs[i]
		}
		calls = append(calls, call{shard: sh, ids: ids, idx: idx})
	}
	run := func() error {
		_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i := range calls {
				calls[i].cmd = s.readShard(ctx, p, calls[i].shard, calls[i].ids)
			}
			return nil
		})
		return err
	}
	err := run()
	if err != nil {
		noScript := false
		for i := range calls {
			if calls[i].cmd != nil && isNoScript(calls[i].cmd.Err()) {
				noScript = true
			}
		}
		if noScript {
			if lerr := readScript.Load(ctx, s.c).Err(); lerr != nil {
				return nil, unavailable(lerr)
			}
			err = run()
		}
	}
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]consent.Record, len(userIDs))
	var bad []string
	for _, c := range calls {
		reply, err := c.cmd.Slice()
		if err != nil {
			return nil, unavailable(err)
		}
		b, err := decodeShard(c.shard, c.ids, c.idx, reply, out)
		if err != nil {
			return nil, err
		}
		bad = append(bad, b...)
	}
	if len(bad) > 0 {
		return out, &store.CorruptError{UserIDs: bad, Detail: "record missing while the user's receipts remain, or record not decodable"}
	}
	return out, nil
}
