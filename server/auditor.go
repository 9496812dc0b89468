package server

import (
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

// AuditReceiptsResponse is GET /v1/audit/users/{id}/receipts: every
// receipt kept about one user, redacted (consent.Receipt.Redact: what was
// done, when, by whom, through which surface, under which policy version,
// never what it was about), and whether they verify as the record's hash
// chain. For an erased user these are the receipts kept in storage only
// (Art. 24), which no user route serves.
type AuditReceiptsResponse struct {
	UserID string `json:"user_id"`
	// Version and LastHash are the record's head the chain must end at;
	// Purged is the anchor the last purge of expired receipts left (absent
	// when none was purged).
	Version  uint64         `json:"version"`
	LastHash string         `json:"last_hash,omitempty"`
	Purged   consent.Anchor `json:"purged,omitzero"`
	// Erased says whether the user's personal data was erased; Erasure is
	// then the erasure certificate.
	Erased  bool           `json:"erased"`
	Erasure *store.Erasure `json:"erasure,omitempty"`
	// Receipts are every receipt kept, oldest first, redacted.
	Receipts []consent.Receipt `json:"receipts"`
	// ChainValid says whether the receipts, as the store keeps them, verify
	// against the record's head under the deployment's chain key
	// (consent.VerifyChain); ChainReason says why not (absent when valid).
	ChainValid  bool   `json:"chain_valid"`
	ChainReason string `json:"chain_reason,omitempty"`
}

// getAuditReceipts answers an auditor (or a regulator with an auditor
// key) one user's receipts and their chain verification. The receipts are
// verified as the store keeps them, then redacted: the route shows no
// personal content, whether or not the user was erased.
func (s *Server) getAuditReceipts(c *gin.Context) {
	id, ok := userID(c)
	if !ok {
		return
	}
	rec, rcs, set, err := s.userReceipts(c.Request.Context(), id)
	if err != nil {
		fail(c, err)
		return
	}
	out := AuditReceiptsResponse{UserID: id, Version: rec.Version, LastHash: rec.LastHash, Purged: rec.Purged,
		Erased: rec.State.Erased, Receipts: make([]consent.Receipt, 0, len(rcs)), ChainValid: true}
	if err := s.verifyChain(rec, rcs, &set); err != nil {
		out.ChainValid, out.ChainReason = false, err.Error()
	}
	for _, rc := range rcs {
		out.Receipts = append(out.Receipts, rc.Redact())
	}
	if rec.State.Erased {
		out.Erasure = store.Certify(rec, rcs, set.RetentionOrDefault())
	}
	c.JSON(http.StatusOK, out)
}

// auditorLog logs every read of one user's data by an auditor key: the
// key, the route, the status and the request ID (never the user ID, which
// the auditor's own records hold).
func (s *Server) auditorLog() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Next()
		status := c.Writer.Status()
		level := slog.LevelInfo
		if status >= 400 {
			level = slog.LevelWarn
		}
		s.cfg.Logger.Log(c.Request.Context(), level, "auditor access", "key_id", keyIDOf(c), "route", routeOf(c),
			"status", status, "request_id", requestIDOf(c))
	}
}
