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
	// RoleAuditor runs Art. 46 reports: aggregated data only, never one
	// person's.
	RoleAuditor Role = "auditor"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleApp || r == RoleAdmin || r == RoleAuditor }

// ErrBadKey reports a malformed, unknown or revoked API key.
var ErrBadKey = errors.New("server: unknown or revoked API key")

// keyPrefix starts every key: rg_<id>_<secret>.
const keyPrefix = "rg_"

// NewKey creates a key with role r in ks and returns the key to hand out
// (shown once: only its hash is stored).
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
	if err := ks.PutKey(ctx, k); err != nil {
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
// short time so a request does not always cost a store read. A revoked key
// stops working within cacheTTL.
type keyCache struct {
	ks  store.KeyStore
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]cachedKey
}

type cachedKey struct {
	k       store.APIKey
	err     error
	expires time.Time
}

func (kc *keyCache) verify(ctx context.Context, key string) (store.APIKey, error) {
	id, secret, ok := parseKey(key)
	if !ok {
		return store.APIKey{}, ErrBadKey
	}
	now := time.Now()
	kc.mu.Lock()
	ck, hit := kc.m[id]
	kc.mu.Unlock()
	if !hit || now.After(ck.expires) {
		k, err := kc.ks.GetKey(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			err = ErrBadKey
		}
		if err != nil && !errors.Is(err, ErrBadKey) {
			return store.APIKey{}, err // store trouble: not cached
		}
		ck = cachedKey{k: k, err: err, expires: now.Add(kc.ttl)}
		kc.mu.Lock()
		if len(kc.m) > 100_000 {
			kc.m = map[string]cachedKey{}
		}
		kc.m[id] = ck
		kc.mu.Unlock()
	}
	if ck.err != nil || ck.k.Revoked() {
		return store.APIKey{}, ErrBadKey
	}
	want, _ := hex.DecodeString(ck.k.Hash)
	got := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(want, got[:]) != 1 {
		return store.APIKey{}, ErrBadKey
	}
	return ck.k, nil
}

// limiter is a token bucket per key.
type limiter struct {
	rps   rate.Limit
	burst int
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
	return lim.Allow()
}

const ctxKey = "recguard.key"

// authenticate checks the bearer key, the role and the key's rate.
func (s *Server) authenticate(roles ...Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.GetHeader("Authorization")
		scheme, key, ok := strings.Cut(h, " ")
		ok = ok && strings.EqualFold(scheme, "Bearer")
		if !ok || key == "" {
			c.Header("WWW-Authenticate", `Bearer realm="recguard"`)
			failCode(c, 401, codeUnauth, "", "send Authorization: Bearer <key>")
			return
		}
		k, err := s.keys.verify(c.Request.Context(), strings.TrimSpace(key))
		if errors.Is(err, ErrBadKey) {
			c.Header("WWW-Authenticate", `Bearer realm="recguard", error="invalid_token"`)
			failCode(c, 401, codeUnauth, "", "unknown or revoked key")
			return
		}
		if err != nil {
			fail(c, err)
			return
		}
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
			c.Header("Retry-After", strconv.Itoa(max(1, int(math.Ceil(1/float64(s.limit.rps))))))
			failCode(c, 429, codeRateLimited, "", "key %s is over its rate of %v requests per second", k.ID, s.limit.rps)
			return
		}
		c.Set(ctxKey, k)
		c.Next()
	}
}

// keyOf returns the authenticated key of a request.
func keyOf(c *gin.Context) store.APIKey {
	v, _ := c.Get(ctxKey)
	k, _ := v.(store.APIKey)
	return k
}
