package memory

import (
	"context"
	"sync"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

var _ store.RequestCounter = (*Store)(nil)

// maxCountedRequests caps one user's request counts: the count saturates
// there, far over any threshold.
const maxCountedRequests = 1000

// sweepRequestsAt is the number of users counted from which CountRequest
// forgets those with no request in the window.
const sweepRequestsAt = 100_000

// requests holds the users' request counts, in memory only (like presence:
// an embedded store serves one process).
type requests struct {
	mu sync.Mutex
	m  map[string][]request // user -> requests, oldest first
}

type request struct {
	class string
	at    int64 // unix ms
}

// CountRequest records one request of class by userID at at and returns
// how many of that class the user made in (at-window, at]. The counts are
// kept in memory only; an erasure of the user drops them.
func (s *Store) CountRequest(ctx context.Context, userID, class string, at time.Time, window time.Duration) (int, error) {
	if err := s.check(ctx); err != nil {
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
	ms, from := at.UnixMilli(), at.Add(-window).UnixMilli()
	r := &s.requests
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string][]request{}
	}
	var kept []request
	for _, q := range r.m[userID] {
		if q.at > from {
			kept = append(kept, q)
		}
	}
	kept = append(kept, request{class: class, at: ms})
	if len(kept) > maxCountedRequests {
		kept = kept[len(kept)-maxCountedRequests:]
	}
	r.m[userID] = kept
	if len(r.m) > sweepRequestsAt {
		// Forget users whose every request is out of this window.
		for id, qs := range r.m {
			if qs[len(qs)-1].at <= from {
				delete(r.m, id)
			}
		}
	}
	n := 0
	for _, q := range kept {
		if q.class == class && q.at > from {
			n++
		}
	}
	return n, nil
}

// forget drops the user's request counts (erasure).
func (r *requests) forget(userID string) {
	r.mu.Lock()
	delete(r.m, userID)
	r.mu.Unlock()
}
