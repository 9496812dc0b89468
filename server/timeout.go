package server

import (
	"context"
	"errors"

	"github.com/gin-gonic/gin"
)

// Gin context keys of the store bound.
const (
	ctxStore = "recguard.store"  // the request's context bounded by StoreTimeout
	ctxOrig  = "recguard.reqctx" // the request's context before it
)

// storeTimeoutDetail is the detail of the 503 of a request whose store work
// ran out of StoreTimeout.
const storeTimeoutDetail = "the store did not answer within the time this server allows a request's store work: nothing is guessed; " +
	"retry later (a change sent now may or may not have been recorded: read it back)"

// storeBound bounds the rest of the request (its handler and the
// middleware after this one, such as the rights log) by StoreTimeout: the
// request's context is replaced by one with that deadline, which every
// store call of the request inherits.
func (s *Server) storeBound() gin.HandlerFunc {
	return func(c *gin.Context) {
		orig := c.Request.Context()
		ctx, cancel := context.WithTimeout(orig, s.cfg.StoreTimeout)
		defer cancel()
		c.Set(ctxOrig, orig)
		c.Set(ctxStore, ctx)
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}

// storeTimedOut reports whether the request's StoreTimeout ran out.
func storeTimedOut(c *gin.Context) bool {
	v, ok := c.Get(ctxStore)
	if !ok {
		return false
	}
	ctx, ok := v.(context.Context)
	return ok && errors.Is(ctx.Err(), context.DeadlineExceeded)
}

// waitCtx is the context of a WaitForAll wait after a change: the
// request's own context (not its store bound, which the change may have
// used up) with a fresh StoreTimeout. cancel must be called.
func (s *Server) waitCtx(c *gin.Context) (context.Context, context.CancelFunc) {
	parent := c.Request.Context()
	if v, ok := c.Get(ctxOrig); ok {
		if ctx, ok := v.(context.Context); ok {
			parent = ctx
		}
	}
	return context.WithTimeout(parent, s.cfg.StoreTimeout)
}
