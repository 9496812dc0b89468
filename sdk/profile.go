package sdk

import (
	"context"
	"errors"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// Profile is everything held about one user, read fresh from the store: the
// Art. 23 right of access.
type Profile struct {
	UserID  string        `json:"user_id"`
	Version uint64        `json:"version"`
	State   consent.State `json:"state"`
	// Tags lists the user's tags with their source and whether a
	// personalized ranker may use each one now.
	Tags []ProfileTag `json:"tags"`
	// Suppressed are tags the user deleted; they cannot come back unless
	// the user declares them again.
	Suppressed []tags.Suppression `json:"suppressed"`
	Decision   consent.Decision   `json:"decision"`
	Receipts   []consent.Receipt  `json:"receipts"`
}

// ProfileTag is one tag in a Profile.
type ProfileTag struct {
	Tag    tags.Tag    `json:"tag"`
	Source tags.Source `json:"source"`
	At     time.Time   `json:"at"`
	Usable bool        `json:"usable"`
}

// Profile reads the user's record and receipts from the store (never from
// the cache) and explains which tags may be used now.
func (c *Client) Profile(ctx context.Context, userID string) (Profile, error) {
	if c.closed.Load() {
		return Profile{}, ErrClosed
	}
	if err := consent.ValidUserID(userID); err != nil {
		return Profile{}, err
	}
	rec, err := c.st.Get(ctx, userID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Profile{}, err
	}
	rcs, err := c.st.Receipts(ctx, userID)
	if err != nil {
		return Profile{}, err
	}
	sv := c.settings.Load()
	p := Profile{UserID: userID, Version: rec.Version, State: rec.State, Suppressed: rec.Tags.Suppressed,
		Decision: consent.Evaluate(rec.State, rec.Tags, &sv.set), Receipts: rcs}
	usable := map[tags.Tag]bool{}
	for _, t := range consent.UsableTags(rec.State, rec.Tags, &sv.set) {
		usable[t] = true
	}
	for _, e := range rec.Tags.Entries {
		p.Tags = append(p.Tags, ProfileTag{Tag: e.Tag, Source: e.Source, At: e.At, Usable: usable[e.Tag] && p.Decision.Personalized})
	}
	return p, nil
}
