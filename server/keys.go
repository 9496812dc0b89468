package server

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/recguard/recguard/store"
)

// The admin key routes let an admin key make, list and revoke API keys
// while the server runs (the embedded store is locked by the server, so
// `recguard keys` reaches it through these routes with --server):
//
//	POST   /v1/admin/keys       {"role": "app", "name": "backend"} -> 201, the key once
//	GET    /v1/admin/keys       every key: ID, role, name, created, revoked; never a secret
//	DELETE /v1/admin/keys/{id}  revoke; this instance refuses the key at once, the others within KeyCacheTTL

// MaxKeyNameLen bounds a key's name (bytes).
const MaxKeyNameLen = 128

// KeyRequest is POST /v1/admin/keys.
type KeyRequest struct {
	// Role is the new key's role: app, admin or auditor.
	Role string `json:"role"`
	// Name is a name for people (optional, at most MaxKeyNameLen bytes of
	// printable UTF-8).
	Name string `json:"name"`
}

// KeyInfo is a key as GET /v1/admin/keys lists it: never its secret nor
// its hash.
type KeyInfo struct {
	ID        string     `json:"id"`
	Role      string     `json:"role"`
	Name      string     `json:"name"`
	CreatedAt time.Time  `json:"created_at"`
	Revoked   bool       `json:"revoked"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// KeyCreated is the answer to POST /v1/admin/keys: the key to hand out
// (shown this once: only its hash is stored) and what it is.
type KeyCreated struct {
	Key string `json:"key"`
	KeyInfo
}

// KeysResponse is GET /v1/admin/keys, oldest key first.
type KeysResponse struct {
	Keys []KeyInfo `json:"keys"`
}

// pendingKey is the 202 answer to a key creation the replicas did not
// confirm: a not-replicated problem that also carries the key (it works,
// and it is shown only this once).
type pendingKey struct {
	Problem
	*KeyCreated
}

// pendingRevoke is the 202 answer to a revocation the replicas did not
// confirm: a not-replicated problem that also carries the revoked key.
type pendingRevoke struct {
	Problem
	*KeyInfo
}

func keyInfo(k store.APIKey) KeyInfo {
	ki := KeyInfo{ID: k.ID, Role: k.Role, Name: k.Name, CreatedAt: k.CreatedAt.UTC(), Revoked: k.Revoked()}
	if k.Revoked() {
		t := k.RevokedAt.UTC()
		ki.RevokedAt = &t
	}
	return ki
}

// keyRoutes registers the key routes on the admin group.
func (s *Server) keyRoutes(adm *gin.RouterGroup) {
	adm.POST("/keys", s.postKey)
	adm.GET("/keys", s.getKeys)
	adm.DELETE("/keys/:id", s.deleteKey)
}

// validKeyName checks a key's name: printable UTF-8, at most MaxKeyNameLen
// bytes (it is shown in lists and logs).
func validKeyName(n string) error {
	if len(n) > MaxKeyNameLen {
		return fmt.Errorf("name is %d bytes; at most %d", len(n), MaxKeyNameLen)
	}
	if !utf8.ValidString(n) {
		return errors.New("name is not valid UTF-8")
	}
	for _, r := range n {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("name holds the unprintable character %U", r)
		}
	}
	return nil
}

func (s *Server) postKey(c *gin.Context) {
	var b KeyRequest
	if !s.decode(c, &b) {
		return
	}
	if !Role(b.Role).Valid() {
		failCode(c, http.StatusUnprocessableEntity, codeInvalid, "role", "role %q: want app, admin or auditor", b.Role)
		return
	}
	if err := validKeyName(b.Name); err != nil {
		failCode(c, http.StatusUnprocessableEntity, codeInvalid, "name", "%v", err)
		return
	}
	ks := s.st.(store.KeyStore) // New checked it
	key, k, err := NewKey(c.Request.Context(), ks, Role(b.Role), b.Name, s.cfg.Now())
	if k.ID != "" {
		adminDetail(c, "new_key_id", k.ID, "new_key_role", k.Role)
	}
	switch {
	case errors.Is(err, store.ErrNotReplicated):
		s.m.notPropagated.Inc()
		c.Error(err) // logged, never shown
		p := Problem{Type: problemTypeBase + codeNotReplicate, Title: titles[codeNotReplicate], Status: http.StatusAccepted, Detail: safeDetails[codeNotReplicate]}
		c.Header("Content-Type", "application/problem+json")
		c.AbortWithStatusJSON(http.StatusAccepted, pendingKey{Problem: p, KeyCreated: &KeyCreated{Key: key, KeyInfo: keyInfo(k)}})
	case err != nil:
		fail(c, err)
	default:
		c.JSON(http.StatusCreated, KeyCreated{Key: key, KeyInfo: keyInfo(k)})
	}
}

func (s *Server) getKeys(c *gin.Context) {
	all, err := s.st.(store.KeyStore).ListKeys(c.Request.Context())
	if err != nil {
		fail(c, err)
		return
	}
	sort.SliceStable(all, func(i, j int) bool {
		if !all[i].CreatedAt.Equal(all[j].CreatedAt) {
			return all[i].CreatedAt.Before(all[j].CreatedAt)
		}
		return all[i].ID < all[j].ID
	})
	out := KeysResponse{Keys: make([]KeyInfo, 0, len(all))}
	for _, k := range all {
		out.Keys = append(out.Keys, keyInfo(k))
	}
	c.JSON(http.StatusOK, out)
}

// validKeyID reports whether id has the form of a key ID (12 lowercase hex
// digits).
func validKeyID(id string) bool {
	if len(id) != 12 {
		return false
	}
	for _, r := range id {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}

// deleteKey revokes a key. Revoking a revoked key changes nothing (200).
// The last active admin key is not revoked (409): with the embedded store
// locked by the server, no admin could make another.
func (s *Server) deleteKey(c *gin.Context) {
	id := c.Param("id")
	if !validKeyID(id) {
		failCode(c, http.StatusUnprocessableEntity, codeInvalid, "id", "key ID %q: want 12 lowercase hex digits (keys list shows them)", id)
		return
	}
	ks := s.st.(store.KeyStore)
	ctx := c.Request.Context()
	k, err := ks.GetKey(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			failCode(c, http.StatusNotFound, codeNotFound, "id", "no key %s", id)
			return
		}
		fail(c, err)
		return
	}
	adminDetail(c, "revoked_key_id", id, "revoked_key_role", k.Role)
	if !k.Revoked() && Role(k.Role) == RoleAdmin {
		all, err := ks.ListKeys(ctx)
		if err != nil {
			fail(c, err)
			return
		}
		active := 0
		for _, o := range all {
			if !o.Revoked() && Role(o.Role) == RoleAdmin {
				active++
			}
		}
		if active <= 1 {
			failCode(c, http.StatusConflict, codeConflict, "id", "key %s is the last active admin key: create another admin key first", id)
			return
		}
	}
	err = RevokeKey(ctx, ks, id, s.cfg.Now())
	if err == nil || errors.Is(err, store.ErrNotReplicated) {
		if k2, gerr := ks.GetKey(ctx, id); gerr == nil {
			k = k2
		}
		s.keys.update(k)
	}
	switch {
	case errors.Is(err, store.ErrNotReplicated):
		s.m.notPropagated.Inc()
		c.Error(err)
		p := Problem{Type: problemTypeBase + codeNotReplicate, Title: titles[codeNotReplicate], Status: http.StatusAccepted, Detail: safeDetails[codeNotReplicate]}
		c.Header("Content-Type", "application/problem+json")
		ki := keyInfo(k)
		c.AbortWithStatusJSON(http.StatusAccepted, pendingRevoke{Problem: p, KeyInfo: &ki})
	case err != nil:
		fail(c, err)
	default:
		c.JSON(http.StatusOK, keyInfo(k))
	}
}
