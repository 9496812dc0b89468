package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/recguard/recguard/store"
)

// Role is what a key may do.
type Role string

// The roles.
const (
	// RoleApp is an app backend acting for its users: the user-rights
	// routes and outcome events.
	RoleApp Role = "app"
	// RoleAdmin is a product team: settings, suspension, audiences, the
	// rights report.
	RoleAdmin Role = "admin"
	// RoleAuditor runs Art. 46 reports (aggregated data only) and reads
	// and verifies one user's receipts, redacted: an erased user's kept in
	// storage only (Art. 24) included. It never sees personal content.
	RoleAuditor Role = "auditor"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleApp || r == RoleAdmin || r == RoleAuditor }

// ErrBadKey reports a malformed, unknown or revoked API key.
var ErrBadKey = errors.New("server: unknown or revoked API key")

// keyPrefix starts every key: rg_<id>_<secret>.
const keyPrefix = "rg_"

// NewKey creates a key with role r in ks and returns the key to hand out
// (shown once: only its hash is stored). When the store recorded the key but
// its replicas did not confirm it (store.ErrNotReplicated), the key is
// returned together with that error: it works, but a failover now could
// lose it.
func NewKey(ctx context.Context, ks store.KeyStore, r Role, name string, now time.Time) (string, store.APIKey, error) {
	if !r.Valid() {
		return "", store.APIKey{}, fmt.Errorf("server: unknown role %q (want app, admin or auditor)", r)
	}
	var idb [6]byte
	var secret [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return "", store.APIKey{}, err
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return "", store.APIKey{}, err
	}
	id := hex.EncodeToString(idb[:])
	sec := base64.RawURLEncoding.EncodeToString(secret[:])
	k := store.APIKey{ID: id, Role: string(r), Hash: hashSecret(sec), Name: name, CreatedAt: now.UTC()}
	if err := ks.PutKey(ctx, k); errors.Is(err, store.ErrNotReplicated) {
		return keyPrefix + id + "_" + sec, k, err
	} else if err != nil {
		return "", store.APIKey{}, err
	}
	return keyPrefix + id + "_" + sec, k, nil
}

// RevokeKey revokes the key with id.
func RevokeKey(ctx context.Context, ks store.KeyStore, id string, now time.Time) error {
	k, err := ks.GetKey(ctx, id)
	if err != nil {
		return err
	}
	if k.Revoked() {
		return nil
	}
	k.RevokedAt = now.UTC()
	return ks.PutKey(ctx, k)
}

func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// parseKey splits rg_<id>_<secret>.
func parseKey(key string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(key, keyPrefix)
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	return id, secret, ok && len(id) == 12 && len(secret) > 0 && len(secret) <= 64
}

// keyCache verifies keys against the KeyStore, remembering answers for a
// short time so a request does not always cost a store read.
//
//   - A key the store answered for within ttl is judged from that answer: a
//     revoked key stops working within ttl whenever the store answers.
//   - Past ttl the key is read again (one read per key at a time, bounded
//     by budget). When that read fails because the store is unavailable or
//     slow, a key the store confirmed within grace keeps working, and the
//     next synchronous read of it is tried no sooner than retry later, so
//     requests during an outage do not each wait for the store.
//   - An unknown key is remembered as unknown for ttl too.
type keyCache struct {
	ks     store.KeyStore
	ttl    time.Duration
	grace  time.Duration
	budget time.Duration
	retry  time.Duration
	now    func() time.Time

	mu       sync.Mutex
	known    map[string]*knownKey    // keys the store holds (revoked ones too)
	unknown  map[string]time.Time    // IDs the store said it does not hold, and when
	inflight map[string]*keyReadCall // reads in progress, by ID
}

// knownKey is a key as the store last answered for it.
type knownKey struct {
	k          store.APIKey
	confirmed  time.Time // when the store last answered with k
	retryAfter time.Time // after a failed read: no synchronous read before
}

type keyReadCall struct {
	done chan struct{}
	k    store.APIKey
	err  error
}

// maxUnknownKeys bounds the unknown-key memory; past it, it starts over.
const maxUnknownKeys = 100_000

func newKeyCache(ks store.KeyStore, ttl, grace, budget time.Duration, now func() time.Time) *keyCache {
	return &keyCache{
		ks: ks, ttl: ttl, grace: grace, budget: budget, retry: min(time.Second, ttl), now: now,
		known: map[string]*knownKey{}, unknown: map[string]time.Time{}, inflight: map[string]*keyReadCall{},
	}
}

// keyCheck is what the cache can say about a key without the store.
type keyCheck int

const (
	keyNeedsRead keyCheck = iota // nothing fresh enough is known: read the store
	keyOK                        // a known, unrevoked key with this secret
	keyBad                       // malformed, unknown, revoked or a wrong secret
	keyGrace                     // stale, but the store failed lately and the key is within its grace
)

// cached judges key from what the cache holds (no I/O).
func (kc *keyCache) cached(key string) (store.APIKey, keyCheck) {
	id, secret, ok := parseKey(key)
	if !ok {
		return store.APIKey{}, keyBad
	}
	now := kc.now()
	e, known, unknownAt, isUnknown := kc.lookup(id)
	switch {
	case known && now.Sub(e.confirmed) < kc.ttl:
		return judge(e.k, secret)
	case !known && isUnknown && now.Sub(unknownAt) < kc.ttl:
		return store.APIKey{}, keyBad
	case known && now.Before(e.retryAfter) && now.Sub(e.confirmed) < kc.grace:
		return judgeGrace(e.k, secret)
	}
	return store.APIKey{}, keyNeedsRead
}

// update records k as the store just answered it (a key this server
// revoked is refused by this instance at once, not after the TTL).
func (kc *keyCache) update(k store.APIKey) {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	kc.known[k.ID] = &knownKey{k: k, confirmed: kc.now()}
	delete(kc.unknown, k.ID)
}

// lookup returns what the cache holds about key id: a copy of its known
// entry, or when the store said it is unknown.
func (kc *keyCache) lookup(id string) (e knownKey, known bool, unknownAt time.Time, isUnknown bool) {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	if kk := kc.known[id]; kk != nil {
		e, known = *kk, true
	}
	unknownAt, isUnknown = kc.unknown[id]
	return e, known, unknownAt, isUnknown
}

// judgeGrace judges a key from a stale answer, during the grace.
func judgeGrace(k store.APIKey, secret string) (store.APIKey, keyCheck) {
	if k, c := judge(k, secret); c == keyOK {
		return k, keyGrace
	}
	return store.APIKey{}, keyBad
}

func judge(k store.APIKey, secret string) (store.APIKey, keyCheck) {
	if k.Revoked() {
		return store.APIKey{}, keyBad
	}
	want, ok := decodeHash(k.Hash)
	// The secret is hashed from a buffer on the stack: parseKey bounds it
	// to 64 bytes, and []byte(secret) would allocate.
	var buf [64]byte
	got := sha256.Sum256(buf[:copy(buf[:], secret)])
	if subtle.ConstantTimeCompare(want[:], got[:]) != 1 || !ok || len(secret) > len(buf) {
		return store.APIKey{}, keyBad
	}
	return k, keyOK
}

// decodeHash decodes a stored key hash (64 hex digits) without
// allocating; ok is false for anything else.
func decodeHash(h string) (out [sha256.Size]byte, ok bool) {
	if len(h) != 2*len(out) {
		return out, false
	}
	for i := range out {
		hi, ok1 := unhex(h[2*i])
		lo, ok2 := unhex(h[2*i+1])
		if !ok1 || !ok2 {
			return out, false
		}
		out[i] = hi<<4 | lo
	}
	return out, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// unavailableErr reports a store that could not answer for the key (down,
// slower than the budget, or reporting lost data): the errors a key's grace
// covers.
func unavailableErr(err error) bool {
	return errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrDataLoss) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// read reads the key from the store (bounded by the budget, shared with
// concurrent reads of the same ID) and judges it. With the store
// unavailable, a key confirmed within the grace is judged from its last
// answer (keyGrace); otherwise the store's error is returned.
func (kc *keyCache) read(ctx context.Context, key string) (store.APIKey, keyCheck, error) {
	id, secret, ok := parseKey(key)
	if !ok {
		return store.APIKey{}, keyBad, nil
	}
	kc.mu.Lock()
	call := kc.inflight[id]
	if call == nil {
		call = &keyReadCall{done: make(chan struct{})}
		kc.inflight[id] = call
		go kc.fetch(id, call)
	}
	kc.mu.Unlock()
	var k store.APIKey
	var err error
	select {
	case <-call.done:
		k, err = call.k, call.err
	case <-ctx.Done():
		err = ctx.Err()
	}
	switch {
	case err == nil:
		k, c := judge(k, secret)
		return k, c, nil
	case errors.Is(err, ErrBadKey):
		return store.APIKey{}, keyBad, nil
	case !unavailableErr(err):
		return store.APIKey{}, keyBad, err
	}
	if e, known, _, _ := kc.lookup(id); known && kc.now().Sub(e.confirmed) < kc.grace {
		k, c := judgeGrace(e.k, secret)
		return k, c, nil
	}
	return store.APIKey{}, keyBad, err
}

// fetch is one store read of key id; it records the answer and wakes the
// requests waiting for it.
func (kc *keyCache) fetch(id string, call *keyReadCall) {
	ctx, cancel := context.WithTimeout(context.Background(), kc.budget)
	k, err := kc.ks.GetKey(ctx, id)
	cancel()
	if errors.Is(err, store.ErrNotFound) {
		err = ErrBadKey
	}
	now := kc.now()
	kc.mu.Lock()
	switch {
	case err == nil:
		kc.known[id] = &knownKey{k: k, confirmed: now}
		delete(kc.unknown, id)
	case errors.Is(err, ErrBadKey):
		delete(kc.known, id)
		if len(kc.unknown) >= maxUnknownKeys {
			kc.unknown = map[string]time.Time{}
		}
		kc.unknown[id] = now
	default:
		if kk := kc.known[id]; kk != nil {
			kk.retryAfter = now.Add(kc.retry)
		}
	}
	delete(kc.inflight, id)
	kc.mu.Unlock()
	call.k, call.err = k, err
	close(call.done)
}

// limiter is a token bucket per key, on the server's clock.
type limiter struct {
	rps   rate.Limit
	burst int
	now   func() time.Time
	mu    sync.Mutex
	m     map[string]*rate.Limiter
}

func (l *limiter) allow(id string) bool {
	if l.rps <= 0 {
		return true
	}
	l.mu.Lock()
	lim := l.m[id]
	if lim == nil {
		lim = rate.NewLimiter(l.rps, l.burst)
		l.m[id] = lim
	}
	l.mu.Unlock()
	return lim.AllowN(l.now(), 1)
}

// addrLimiter is a token bucket per client address for failed
// authentications, on the server's clock.
type addrLimiter struct {
	rps   rate.Limit
	burst int
	now   func() time.Time
	mu    sync.Mutex
	m     map[string]*rate.Limiter
}

// maxAddrs bounds the addresses tracked; past it, full buckets (which say
// nothing) are dropped, and if that is not enough, all are.
const maxAddrs = 100_000

func newAddrLimiter(rps float64, burst int, now func() time.Time) *addrLimiter {
	return &addrLimiter{rps: rate.Limit(rps), burst: burst, now: now, m: map[string]*rate.Limiter{}}
}

func (l *addrLimiter) get(addr string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.m[addr]
	if lim == nil {
		if len(l.m) >= maxAddrs {
			now := l.now()
			for a, b := range l.m {
				if b.TokensAt(now) >= float64(l.burst) {
					delete(l.m, a)
				}
			}
			if len(l.m) >= maxAddrs {
				l.m = map[string]*rate.Limiter{}
			}
		}
		lim = rate.NewLimiter(l.rps, l.burst)
		l.m[addr] = lim
	}
	return lim
}

// exhausted reports whether addr has no failed attempt left now (without
// spending one).
func (l *addrLimiter) exhausted(addr string) bool {
	if l.rps <= 0 {
		return false
	}
	return l.get(addr).TokensAt(l.now()) < 1
}

// spend counts one failed attempt of addr and reports whether it was
// within the rate.
func (l *addrLimiter) spend(addr string) bool {
	if l.rps <= 0 {
		return true
	}
	return l.get(addr).AllowN(l.now(), 1)
}

// addrKey is the bucket of a client address for failed authentications:
// the address itself for IPv4, its /64 for IPv6 (one host usually holds a
// whole /64, so single addresses would be free to rotate).
func addrKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Is4() || a.Is4In6() {
		return ip
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}

// retryAfter is the Retry-After of a 429: whole seconds to the next token.
func retryAfter(rps rate.Limit) string {
	return strconv.Itoa(max(1, int(math.Ceil(1/float64(rps)))))
}

// authenticate checks the bearer key, the role and the key's rate. Failed
// attempts are counted per client address; an address over its rate is
// answered 429 before the store is read. The decision budget starts here:
// the key read and the decision routes share it (budgetCtx). Its timer is
// made only when something waits on it (deadlineCtx), and the client
// address is worked out only when a failure is to be counted.
func (s *Server) authenticate(roles ...Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		st := state(c)
		st.budget.init(c.Request.Context(), time.Now().Add(s.cfg.DecisionBudget))
		defer st.budget.cancel()
		ctx := &st.budget
		h := c.GetHeader("Authorization")
		scheme, key, ok := strings.Cut(h, " ")
		ok = ok && strings.EqualFold(scheme, "Bearer")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			s.authFailed(c, clientAddr(c), `Bearer realm="recguard"`, "send Authorization: Bearer <key>")
			return
		}
		k, check := s.keys.cached(key)
		var err error
		if check == keyNeedsRead {
			addr := clientAddr(c)
			if s.authFail.exhausted(addr) {
				s.m.authLimited.Inc()
				c.Header("Retry-After", retryAfter(s.authFail.rps))
				failCode(c, 429, codeRateLimited, "", "too many failed authentications from this address")
				return
			}
			k, check, err = s.keys.read(ctx, key)
		}
		switch {
		case err != nil:
			// The store could not answer for the key (and it is not
			// within its grace): a failure to verify, counted against
			// the client's address like a bad key, so a key spray
			// during an outage is limited too.
			s.authFail.spend(clientAddr(c))
			fail(c, err)
			return
		case check == keyBad:
			s.authFailed(c, clientAddr(c), `Bearer realm="recguard", error="invalid_token"`, "unknown or revoked key")
			return
		case check == keyGrace:
			s.m.keyGrace.Inc()
		}
		st.keyTried = k.ID
		allowed := false
		for _, r := range roles {
			if Role(k.Role) == r {
				allowed = true
			}
		}
		if !allowed {
			failCode(c, 403, codeForbidden, "", "a key with role %q cannot use this route (needs %v)", k.Role, roles)
			return
		}
		if !s.limit.allow(k.ID) {
			c.Header("Retry-After", retryAfter(s.limit.rps))
			failCode(c, 429, codeRateLimited, "", "key %s is over its rate of %v requests per second", k.ID, s.limit.rps)
			return
		}
		st.key, st.authed = k, true
		c.Next()
	}
}

// clientAddr is the bucket of the request's client address for failed
// authentications (addrKey of gin's ClientIP).
func clientAddr(c *gin.Context) string { return addrKey(c.ClientIP()) }

// authFailed answers a failed authentication: 401, or 429 when the client
// address is over its rate of failed attempts.
func (s *Server) authFailed(c *gin.Context, addr, challenge, detail string) {
	if !s.authFail.spend(addr) {
		s.m.authLimited.Inc()
		c.Header("Retry-After", retryAfter(s.authFail.rps))
		failCode(c, 429, codeRateLimited, "", "too many failed authentications from this address")
		return
	}
	c.Header("WWW-Authenticate", challenge)
	failCode(c, 401, codeUnauth, "", "%s", detail)
}

// budgetCtx is the request's context bounded by the decision budget (set
// by authenticate; a fresh one elsewhere). cancel must be called.
func (s *Server) budgetCtx(c *gin.Context) (context.Context, context.CancelFunc) {
	if st := stateOf(c); st != nil && st.budget.parent != nil {
		return &st.budget, func() {}
	}
	return context.WithTimeout(c.Request.Context(), s.cfg.DecisionBudget)
}

// keyOf returns the authenticated key of a request.
func keyOf(c *gin.Context) store.APIKey {
	if st := stateOf(c); st != nil && st.authed {
		return st.key
	}
	return store.APIKey{}
}
