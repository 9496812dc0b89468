package redis

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
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
// Redis Cluster, one per node): one script per shard that also checks the
// shard's identity marker (store.ErrDataLoss when it is gone).
func (s *Store) GetMany(ctx context.Context, userIDs []string) ([]consent.Record, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	for _, id := range userIDs {
		if err := consent.ValidUserID(id); err != nil {
			return nil, err
		}
	}
	if len(userIDs) == 0 {
		return []consent.Record{}, nil
	}
	return s.getUsers(ctx, userIDs)
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
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, s.checkLogs(ctx, logs, after)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, unavailable(err)
	}
	var out []store.Event
	var blobs []string
	seen := make([]bool, len(logs))
	for _, st := range res {
		i, ok := byKey[st.Stream]
		if !ok || len(st.Messages) == 0 {
			continue
		}
		seen[i] = true
		if out, blobs, err = decodeMessages(out, blobs, logs[i], after[i], st.Messages); err != nil {
			return nil, err
		}
	}
	// The logs with nothing new are checked for regression and loss.
	var quiet []int
	var qafter []store.Position
	for i, ok := range seen {
		if !ok {
			quiet = append(quiet, logs[i])
			qafter = append(qafter, after[i])
		}
	}
	if len(quiet) > 0 {
		if err := s.checkLogs(ctx, quiet, qafter); err != nil {
			return nil, err
		}
	}
	if err := s.openEvents(ctx, out, blobs); err != nil {
		return nil, err
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

var (
	_ store.KeyStore  = (*Store)(nil)
	_ store.RightsLog = (*Store)(nil)
)

func (k keys) apiKeys() string         { return k.prefix + ":{cfg}:keys" }
func (k keys) rightsYears() string     { return k.prefix + ":{rights}:years" }
func (k keys) rightsYear(y int) string { return k.prefix + ":{rights}:" + fmt.Sprintf("%04d", y) }

// maxKeyIDLen bounds an API key's ID.
const maxKeyIDLen = 64

// validKey checks k before it is stored: an ID of 1 to 64 bytes of [a-z0-9]
// and a role.
func validKey(k store.APIKey) error {
	if err := validKeyID(k.ID); err != nil {
		return err
	}
	if k.Role == "" {
		return &consent.FieldError{Field: "role", Detail: "empty role", Err: consent.ErrInvalidChange}
	}
	return nil
}

func validKeyID(id string) error {
	if len(id) == 0 || len(id) > maxKeyIDLen {
		return &consent.FieldError{Field: "id", Detail: fmt.Sprintf("key ID of %d bytes, want 1 to %d", len(id), maxKeyIDLen), Err: consent.ErrInvalidChange}
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return &consent.FieldError{Field: "id", Detail: fmt.Sprintf("key ID %q: want only a-z and 0-9", id), Err: consent.ErrInvalidChange}
		}
	}
	return nil
}

// PutKey creates or replaces the key with k.ID in the hash of keys.
func (s *Store) PutKey(ctx context.Context, k store.APIKey) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := validKey(k); err != nil {
		return err
	}
	b, err := json.Marshal(k)
	if err != nil {
		return err
	}
	if err := s.c.HSet(ctx, s.k.apiKeys(), k.ID, b).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// GetKey returns the key with id, or an error wrapping store.ErrNotFound.
func (s *Store) GetKey(ctx context.Context, id string) (store.APIKey, error) {
	if err := s.check(); err != nil {
		return store.APIKey{}, err
	}
	if err := validKeyID(id); err != nil {
		return store.APIKey{}, err
	}
	// The key and the {cfg} slot's identity marker in one round trip: a
	// slot that lost its data must not turn every key into "not found".
	var kc, ec *goredis.StringCmd
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		kc = p.HGet(ctx, s.k.apiKeys(), id)
		ec = p.HGet(ctx, s.k.settingsSeq(), "e")
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return store.APIKey{}, unavailable(err)
	}
	if ec.Val() != s.epoch {
		return store.APIKey{}, &store.DataLossError{Logs: []int{store.SettingsLog}, Detail: "the keys' slot lost its identity marker"}
	}
	v, err := kc.Result()
	if errors.Is(err, goredis.Nil) {
		return store.APIKey{}, fmt.Errorf("%w: key %q", store.ErrNotFound, id)
	}
	if err != nil {
		return store.APIKey{}, unavailable(err)
	}
	var k store.APIKey
	if err := json.Unmarshal([]byte(v), &k); err != nil {
		return store.APIKey{}, unavailable(fmt.Errorf("key %q: %w", id, err))
	}
	return k, nil
}

// ListKeys returns every key, revoked ones included, sorted by ID.
func (s *Store) ListKeys(ctx context.Context) ([]store.APIKey, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	all, err := s.c.HGetAll(ctx, s.k.apiKeys()).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]store.APIKey, 0, len(all))
	for id, v := range all {
		var k store.APIKey
		if err := json.Unmarshal([]byte(v), &k); err != nil {
			return nil, unavailable(fmt.Errorf("key %q: %w", id, err))
		}
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b store.APIKey) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// LogRightsRequest appends r to the list of its year (UTC, of Received)
// and records the year in the index of years, atomically.
func (s *Store) LogRightsRequest(ctx context.Context, r store.RightsRequest) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := r.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	y := r.Received.UTC().Year()
	_, err = s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.RPush(ctx, s.k.rightsYear(y), b)
		p.ZAdd(ctx, s.k.rightsYears(), goredis.Z{Score: float64(y), Member: y})
		return nil
	})
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// RightsRequests returns the requests received in [from, to), oldest first
// (requests received at the same time in the order they were logged). It
// reads the lists of the years the range touches that hold any request.
func (s *Store) RightsRequests(ctx context.Context, from, to time.Time) ([]store.RightsRequest, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if !from.Before(to) {
		return []store.RightsRequest{}, nil
	}
	first, last := from.UTC().Year(), to.Add(-time.Nanosecond).UTC().Year()
	years, err := s.c.ZRangeArgs(ctx, goredis.ZRangeArgs{Key: s.k.rightsYears(), Start: strconv.Itoa(first), Stop: strconv.Itoa(last), ByScore: true}).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	cmds := make([]*goredis.StringSliceCmd, 0, len(years))
	if len(years) > 0 {
		_, err = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, ys := range years {
				y, err := strconv.Atoi(ys)
				if err != nil {
					return fmt.Errorf("rights index holds year %q", ys)
				}
				cmds = append(cmds, p.LRange(ctx, s.k.rightsYear(y), 0, -1))
			}
			return nil
		})
		if err != nil {
			return nil, unavailable(err)
		}
	}
	out := []store.RightsRequest{}
	for _, cmd := range cmds {
		for _, it := range cmd.Val() {
			var r store.RightsRequest
			if err := json.Unmarshal([]byte(it), &r); err != nil {
				return nil, unavailable(fmt.Errorf("rights request: %w", err))
			}
			if !r.Received.Before(from) && r.Received.Before(to) {
				out = append(out, r)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b store.RightsRequest) int { return a.Received.Compare(b.Received) })
	return out, nil
}

var _ store.OutcomeLog = (*Store)(nil)

// DefaultOutcomesPerShard bounds each shard's outcome stream.
const DefaultOutcomesPerShard = 2_000_000

func (k keys) outcomes(shard int) string { return k.tag(shard) + "outcomes" }

// AppendOutcomes seals each event under its user's data key (creating the
// key of a user who has none) and XADDs it to the user's shard stream
// (MAXLEN ~): one script per shard for the keys, then one pipeline. Events
// of erased or restricted users are dropped.
func (s *Store) AppendOutcomes(ctx context.Context, userIDs []string, events [][]byte) error {
	if err := s.check(); err != nil {
		return err
	}
	if len(userIDs) != len(events) {
		return fmt.Errorf("%w: %d users for %d events", consent.ErrInvalidChange, len(userIDs), len(events))
	}
	for _, id := range userIDs {
		if err := consent.ValidUserID(id); err != nil {
			return err
		}
	}
	if len(userIDs) == 0 {
		return nil
	}
	byShard := map[int][]string{}
	seen := map[string]bool{}
	for _, id := range userIDs {
		if !seen[id] {
			seen[id] = true
			sh := store.ShardOf(id, s.shards)
			byShard[sh] = append(byShard[sh], id)
		}
	}
	cmds := map[int]*goredis.Cmd{}
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for sh, ids := range byShard {
			keys := make([]string, len(ids))
			offer := make([]any, len(ids))
			for i, id := range ids {
				keys[i] = s.k.user(sh, id)
				offer[i] = string(newDataKey())
			}
			cmds[sh] = outcomeKeysScript.Eval(ctx, p, keys, offer...)
		}
		return nil
	})
	if err != nil {
		return unavailable(err)
	}
	dks := map[string][]byte{}
	for sh, ids := range byShard {
		res, err := cmds[sh].Slice()
		if err != nil || len(res) != len(ids) {
			return unavailable(fmt.Errorf("outcome keys: %v", err))
		}
		for i, id := range ids {
			pair, _ := res[i].([]any)
			if len(pair) != 2 {
				continue
			}
			k, _ := pair[0].(string)
			st, _ := pair[1].(string)
			if st == "" && len(k) == dataKeyLen {
				dks[id] = []byte(k)
			}
		}
	}
	_, err = s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, id := range userIDs {
			dk := dks[id]
			if dk == nil {
				continue // erased or restricted: not stored
			}
			p.XAdd(ctx, &goredis.XAddArgs{Stream: s.k.outcomes(store.ShardOf(id, s.shards)), MaxLen: DefaultOutcomesPerShard, Approx: true,
				Values: []any{"u", id, "x", sealBlob(dk, events[i], eventAD(id))}})
		}
		return nil
	})
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// ReadOutcomes reads every shard's outcome stream in pages, opening each
// event with its user's data key; events of users erased since (no key)
// or restricted now are skipped.
func (s *Store) ReadOutcomes(ctx context.Context, fn func(event []byte) error) error {
	if err := s.check(); err != nil {
		return err
	}
	for shard := 0; shard < s.shards; shard++ {
		start := "-"
		for {
			msgs, err := s.c.XRangeN(ctx, s.k.outcomes(shard), start, "+", 1000).Result()
			if err != nil {
				return unavailable(err)
			}
			users := make([]string, 0, len(msgs))
			for _, m := range msgs {
				if u, _, _ := outcomeFields(m); u != "" {
					users = append(users, u)
				}
			}
			dks, status, err := s.userKeys(ctx, users)
			if err != nil {
				return err
			}
			for _, m := range msgs {
				u, x, raw := outcomeFields(m)
				var e []byte
				switch {
				case u != "" && status[u] != "":
					continue // erased or restricted: not read
				case x != "" && u == "":
					e = []byte("damaged sealed event " + m.ID) // no user: not JSON, counted as malformed
				case x == "":
					// Written whole (before sealing existed), or damaged:
					// handed over as it is, so the reader reports what it
					// cannot use (an audit counts it as malformed) rather
					// than coming out silently short.
					e = []byte(raw)
				default:
					e, err = openBlob(dks[u], x, eventAD(u))
					if errors.Is(err, errShredded) {
						continue // sealed under a key that is gone: erased since
					}
					if err != nil {
						e = []byte("damaged sealed event " + m.ID) // not JSON: counted as malformed
					}
				}
				if err := fn(e); err != nil {
					return err
				}
			}
			if len(msgs) < 1000 {
				break
			}
			start = "(" + msgs[len(msgs)-1].ID
		}
	}
	return nil
}

var _ store.RequestCounter = (*Store)(nil)

// maxCountedRequests caps one user's request counts: the count saturates
// there, far over any threshold.
const maxCountedRequests = 1000

// CountRequest records one request of class by userID at at and returns
// how many of that class the user made in (at-window, at]. The counts live
// in one sorted set per user, in the user's slot, expiring with the window;
// an erasure deletes it.
func (s *Store) CountRequest(ctx context.Context, userID, class string, at time.Time, window time.Duration) (int, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	if err := consent.ValidUserID(userID); err != nil {
		return 0, err
	}
	if err := store.ValidClass(class); err != nil {
		return 0, err
	}
	if window <= 0 {
		return 0, &consent.FieldError{Field: "window", Detail: "window must be positive", Err: consent.ErrInvalidChange}
	}
	ms := at.UnixMilli()
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return 0, err
	}
	member := fmt.Sprintf("%s|%d|%x", class, ms, r)
	ttl := window.Milliseconds() + 1
	n, err := countScript.Run(ctx, s.c, []string{s.k.requests(store.ShardOf(userID, s.shards), userID)},
		ms-window.Milliseconds(), ms, member, class+"|", ttl, maxCountedRequests).Int()
	if err != nil {
		return 0, unavailable(err)
	}
	return n, nil
}

// outcomeFields returns an outcome entry's user, sealed event and whole
// event. An event written whole (before sealing existed: field e) names its
// user only inside the JSON, read here so its user's status still applies.
func outcomeFields(m goredis.XMessage) (user, sealed, whole string) {
	user, _ = m.Values["u"].(string)
	sealed, _ = m.Values["x"].(string)
	whole, _ = m.Values["e"].(string)
	if user == "" && whole != "" {
		var ev struct {
			User string `json:"user"`
		}
		if json.Unmarshal([]byte(whole), &ev) == nil {
			user = ev.User
		}
	}
	if consent.ValidUserID(user) != nil {
		user = ""
	}
	return user, sealed, whole
}
