package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/recguard/recguard/consent"
)

type minorBody struct {
	Minor *bool `json:"minor"`
	// By is who makes the change: system (the default), admin, user or
	// guardian. Anyone may mark a minor; only the user or the guardian
	// may make a minor an adult (the library refuses the others).
	By string `json:"by"`
	// Ref is the reference to the evidence, kept in the receipt.
	Ref     string `json:"ref"`
	Surface string `json:"surface"`
}

// putMinor marks the user as a minor (under 14) or not. Marking a minor
// narrows processing and waits for every instance under WaitForAll;
// making a minor an adult is the user's or the guardian's change only
// (409 not-allowed for admin or system). Made by the user or the
// guardian it is logged as a correction (Art. 44); by the system or an
// admin it is no rights request.
func (s *Server) putMinor(c *gin.Context) {
	id, ok := userID(c)
	if !ok {
		return
	}
	var b minorBody
	if !s.decode(c, &b) {
		return
	}
	if b.Minor == nil {
		failCode(c, http.StatusUnprocessableEntity, codeInvalid, "minor", "minor (true or false) is required")
		return
	}
	actor := consent.ActorSystem
	if b.By != "" {
		actor = consent.Actor(b.By)
		if !actor.Valid() {
			failCode(c, http.StatusUnprocessableEntity, codeInvalid, "by", "by must be system, admin, user or guardian, got %q", b.By)
			return
		}
	}
	if actor == consent.ActorUser || actor == consent.ActorGuardian {
		setKind(c, "correct")
	}
	ch := consent.SetMinor(id, *b.Minor).By(actor, surfaceOr(b.Surface))
	ch.Ref = b.Ref
	s.apply(c, ch, http.StatusOK)
}

type guardianBody struct {
	Granted *bool `json:"granted"`
	// Ref is the guardian's verified identity or consent record (an ID in
	// the app's own systems, never a name); required with granted true.
	Ref     string `json:"ref"`
	Surface string `json:"surface"`
}

// putGuardian records the guardian's consent for a minor, or its
// withdrawal, made by the guardian. A grant needs the guardian's reference
// (kept in the receipt) and a minor (an adult: 409 not-allowed). A
// withdrawal is restrictive: it waits for every instance under WaitForAll.
func (s *Server) putGuardian(c *gin.Context) {
	id, ok := userID(c)
	if !ok {
		return
	}
	setKind(c, "consent")
	var b guardianBody
	if !s.decode(c, &b) {
		return
	}
	if b.Granted == nil {
		failCode(c, http.StatusUnprocessableEntity, codeInvalid, "granted", "granted (true or false) is required")
		return
	}
	var ch consent.Change
	if *b.Granted {
		if b.Ref == "" {
			failCode(c, http.StatusUnprocessableEntity, codeInvalid, "ref", "a guardian's consent needs ref: the guardian's verified identity or consent record")
			return
		}
		ch = consent.GuardianConsent(id, b.Ref)
	} else {
		setKind(c, "withdraw")
		ch = consent.SetGuardian(id, false)
		ch.Ref = b.Ref
	}
	s.apply(c, ch.By(consent.ActorGuardian, surfaceOr(b.Surface)), http.StatusOK)
}
