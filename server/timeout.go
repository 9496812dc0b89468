package server

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// storeTimeoutDetail is the detail of the 503 of a request whose store work
// ran out of StoreTimeout.
const storeTimeoutDetail = "the store did not answer within the time this server allows a request's store work: nothing is guessed; " +
	"retry later (a change sent now may or may not have been recorded: read it back)"

// storeBound bounds the rest of the request (its handler and the
// middleware after this one, such as the rights log) by StoreTimeout: the
// request's context is replaced by one with that deadline, which every
// store call of the request inherits. The bound's timer is made only when
// something waits on it (deadlineCtx): a request answered from caches
// starts none.
func (s *Server) storeBound() gin.HandlerFunc {
	return func(c *gin.Context) {
		st := state(c)
		st.orig = c.Request.Context()
		st.store.init(st.orig, time.Now().Add(s.cfg.StoreTimeout))
		defer st.store.cancel()
		c.Request = c.Request.WithContext(&st.store)
		c.Next()
	}
}

// storeTimedOut reports whether the request's StoreTimeout ran out.
func storeTimedOut(c *gin.Context) bool {
	st := stateOf(c)
	return st != nil && st.store.parent != nil && errors.Is(st.store.Err(), context.DeadlineExceeded)
}

// waitCtx is the context of a WaitForAll wait after a change: the
// request's own context (not its store bound, which the change may have
// used up) with a fresh StoreTimeout. cancel must be called.
func (s *Server) waitCtx(c *gin.Context) (context.Context, context.CancelFunc) {
	parent := c.Request.Context()
	if st := stateOf(c); st != nil && st.orig != nil {
		parent = st.orig
	}
	return context.WithTimeout(parent, s.cfg.StoreTimeout)
}

// deadlineCtx is context.WithDeadline(parent, deadline) made lazily: its
// timer and channel exist only once something asks for Done (a store
// call that may wait, a derived context). Until then Err compares the
// clock with the deadline and asks the parent, so a request that never
// waits (a decision from the caches) costs no timer. Deadline, Err, Done
// and Value answer as the context WithDeadline would make. The zero value
// is not usable: init it, and call cancel when the request ends.
type deadlineCtx struct {
	parent   context.Context
	deadline time.Time

	mu   sync.Mutex
	ctx  context.Context // made by the first Done
	stop context.CancelFunc
	// err is the error fixed by cancel when it came before ctx was made
	// (Canceled, or what the parent or the deadline said by then).
	err error
}

var _ context.Context = (*deadlineCtx)(nil)

func (d *deadlineCtx) init(parent context.Context, deadline time.Time) {
	d.parent, d.deadline = parent, deadline
}

// made returns the real context, making it (and its timer) first.
func (d *deadlineCtx) made() context.Context {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx == nil {
		d.ctx, d.stop = context.WithDeadline(d.parent, d.deadline)
		if d.err != nil {
			d.stop()
		}
	}
	return d.ctx
}

// cancel ends the context (as a CancelFunc does).
func (d *deadlineCtx) cancel() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stop != nil {
		d.stop()
		return
	}
	if d.err == nil {
		if d.err = d.lazyErr(); d.err == nil {
			d.err = context.Canceled
		}
	}
}

// lazyErr is Err before the real context is made and before cancel.
func (d *deadlineCtx) lazyErr() error {
	if err := d.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(d.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// Deadline is the earlier of the deadline and the parent's.
func (d *deadlineCtx) Deadline() (time.Time, bool) {
	if pd, ok := d.parent.Deadline(); ok && pd.Before(d.deadline) {
		return pd, true
	}
	return d.deadline, true
}

// Done makes the real context and returns its channel.
func (d *deadlineCtx) Done() <-chan struct{} { return d.made().Done() }

// Err is the error cancel fixed, else the real context's once made, else
// the parent's error or DeadlineExceeded once the deadline passed.
func (d *deadlineCtx) Err() error {
	d.mu.Lock()
	ctx, err := d.ctx, d.err
	d.mu.Unlock()
	switch {
	case err != nil:
		return err
	case ctx != nil:
		return ctx.Err()
	}
	return d.lazyErr()
}

// Value is the real context's value once made (so contexts derived from
// this one find its cancellation), else the parent's.
func (d *deadlineCtx) Value(key any) any {
	d.mu.Lock()
	ctx := d.ctx
	d.mu.Unlock()
	if ctx != nil {
		return ctx.Value(key)
	}
	return d.parent.Value(key)
}
