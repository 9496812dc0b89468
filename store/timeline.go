package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/recguard/recguard/consent"
)

// Consent timelines (issue 14 part 4): what an auditor or a regulator may
// read about consent over time without reading any one user's data. The
// timeline counts the receipts of every user by time bucket and kind
// (opt-outs and opt-ins of personalized recommendation, refusals and
// re-allowances per push channel, sensitive consents given and withdrawn,
// tags deleted, restrictions, erasures) and the state of today's records
// (how many users have personalization off, refuse each channel, are
// restricted or erased). It carries counts only: no user ID, no receipt, no
// tag.
//
// Receipts of erased users are redacted: their kind and time remain, but
// not which way a change went nor its channel; they are counted in
// Unreadable (and an erasure is counted as such).

// ErrInvalidTimeline is wrapped by the errors about TimelineOptions.
var ErrInvalidTimeline = errors.New("store: invalid timeline options")

// TimelineOptions choose a timeline.
type TimelineOptions struct {
	// From and To bound the receipts counted: From <= At < To; a zero
	// bound is open.
	From, To time.Time
	// Bucket is the width of a time bucket; zero means one day. At least
	// one hour, at most 366 days.
	Bucket time.Duration
}

// Timeline is the consent timeline of a whole store.
type Timeline struct {
	From   time.Time `json:"from,omitzero"`
	To     time.Time `json:"to,omitzero"`
	Bucket string    `json:"bucket"`
	// Users counts the users read; Receipts the receipts counted (inside
	// the window).
	Users    int64 `json:"users"`
	Receipts int64 `json:"receipts"`
	// Buckets are the time buckets with at least one receipt, oldest
	// first; a bucket starts at a multiple of Bucket since the Unix epoch.
	Buckets []TimelineBucket `json:"buckets"`
	// Now is the state of today's records.
	Now TimelineNow `json:"now"`
}

// TimelineBucket counts one time bucket's receipts by kind.
type TimelineBucket struct {
	Start time.Time `json:"start"`
	// PersonalizationOff counts opt-outs of personalized recommendation
	// (a "no" repeated after the re-ask cooldown included),
	// PersonalizationOn opt-ins.
	PersonalizationOff int64 `json:"personalization_off"`
	PersonalizationOn  int64 `json:"personalization_on"`
	// Refused and Allowed count push channel refusals and re-allowances,
	// by channel.
	Refused map[string]int64 `json:"refused"`
	Allowed map[string]int64 `json:"allowed"`
	// SensitiveGranted and SensitiveWithdrawn count separate consents to
	// sensitive data given and withdrawn (or declined).
	SensitiveGranted   int64 `json:"sensitive_granted"`
	SensitiveWithdrawn int64 `json:"sensitive_withdrawn"`
	TagsDeleted        int64 `json:"tags_deleted"`
	// Restricted and Unrestricted count restrictions of processing
	// (Art. 23) and their lifting; Erased erasures.
	Restricted   int64 `json:"restricted"`
	Unrestricted int64 `json:"unrestricted"`
	Erased       int64 `json:"erased"`
	// Unreadable counts the changes of users erased since, whose direction
	// and channel their redacted receipts no longer say.
	Unreadable int64 `json:"unreadable"`
}

// TimelineNow is the state of today's records.
type TimelineNow struct {
	// Users counts records (erased ones included).
	Users              int64            `json:"users"`
	PersonalizationOff int64            `json:"personalization_off"`
	Refused            map[string]int64 `json:"refused"`
	Restricted         int64            `json:"restricted"`
	Erased             int64            `json:"erased"`
}

// ConsentTimeline reads every user's record and receipts (s must list its
// users: UserLister) and returns the timeline. It ends early with ctx's
// error. Options out of range are an error wrapping ErrInvalidTimeline.
func ConsentTimeline(ctx context.Context, s Store, opts TimelineOptions) (Timeline, error) {
	if opts.Bucket == 0 {
		opts.Bucket = 24 * time.Hour
	}
	if opts.Bucket < time.Hour || opts.Bucket > 366*24*time.Hour {
		return Timeline{}, fmt.Errorf("%w: bucket %v: must be from 1h to 366 days", ErrInvalidTimeline, opts.Bucket)
	}
	if !opts.From.IsZero() && !opts.To.IsZero() && !opts.From.Before(opts.To) {
		return Timeline{}, fmt.Errorf("%w: to is not after from", ErrInvalidTimeline)
	}
	ul, ok := s.(UserLister)
	if !ok {
		return Timeline{}, fmt.Errorf("%w: the store cannot list its users", errors.ErrUnsupported)
	}
	tl := Timeline{From: opts.From.UTC(), To: opts.To.UTC(), Bucket: opts.Bucket.String(),
		Now: TimelineNow{Refused: map[string]int64{}}}
	buckets := map[int64]*TimelineBucket{}
	bucketOf := func(at time.Time) *TimelineBucket {
		k := at.UnixNano() / int64(opts.Bucket)
		if at.UnixNano() < 0 && at.UnixNano()%int64(opts.Bucket) != 0 {
			k--
		}
		b := buckets[k]
		if b == nil {
			b = &TimelineBucket{Start: time.Unix(0, k*int64(opts.Bucket)).UTC(), Refused: map[string]int64{}, Allowed: map[string]int64{}}
			buckets[k] = b
		}
		return b
	}
	const page = 500
	for sh := 0; sh < s.Shards(); sh++ {
		for from := 1; ; from += page {
			ids, err := ul.ListUsers(ctx, sh, from, page)
			if err != nil {
				return Timeline{}, err
			}
			for _, id := range ids {
				if err := ctx.Err(); err != nil {
					return Timeline{}, err
				}
				rec, err := s.Get(ctx, id)
				if err != nil && !errors.Is(err, ErrNotFound) {
					return Timeline{}, err
				}
				if err == nil {
					tl.Users++
					st := rec.State
					switch {
					case st.Erased:
						tl.Now.Erased++
					default:
						if st.PersonalizationOff {
							tl.Now.PersonalizationOff++
						}
						if st.Restricted {
							tl.Now.Restricted++
						}
						for _, ch := range st.RefusedChannels {
							tl.Now.Refused[ch]++
						}
					}
				}
				rs, err := s.Receipts(ctx, id)
				if err != nil {
					return Timeline{}, err
				}
				for _, rc := range rs {
					if (!opts.From.IsZero() && rc.At.Before(opts.From)) || (!opts.To.IsZero() && !rc.At.Before(opts.To)) {
						continue
					}
					tl.Receipts++
					countReceipt(bucketOf(rc.At), rc)
				}
			}
			if len(ids) < page {
				break
			}
		}
	}
	tl.Now.Users = tl.Users
	keys := make([]int64, 0, len(buckets))
	for k := range buckets {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	tl.Buckets = make([]TimelineBucket, 0, len(keys))
	for _, k := range keys {
		tl.Buckets = append(tl.Buckets, *buckets[k])
	}
	return tl, nil
}

// countReceipt counts one receipt in b.
func countReceipt(b *TimelineBucket, rc consent.Receipt) {
	if rc.Op == consent.OpErase {
		b.Erased++
		return
	}
	if rc.Redacted {
		switch rc.Op {
		case consent.OpSetPersonalization, consent.OpSetChannel, consent.OpSetSensitive, consent.OpRestrict, consent.OpDeleteTag:
			b.Unreadable++
		}
		return
	}
	refusal := rc.New == "declined" // a "no" repeated after the cooldown
	switch rc.Op {
	case consent.OpSetPersonalization:
		if rc.New == "off" || refusal {
			b.PersonalizationOff++
		} else if rc.New == "on" {
			b.PersonalizationOn++
		}
	case consent.OpSetChannel:
		if rc.New == "refused" || refusal {
			b.Refused[rc.Subject]++
		} else if rc.New == "allowed" {
			b.Allowed[rc.Subject]++
		}
	case consent.OpSetSensitive:
		switch {
		case refusal || strings.HasPrefix(rc.New, "withdrawn"):
			b.SensitiveWithdrawn++
		case rc.New != "" && rc.New != "none":
			b.SensitiveGranted++
		}
	case consent.OpDeleteTag:
		b.TagsDeleted++
	case consent.OpRestrict:
		if rc.New == "restricted" {
			b.Restricted++
		} else if rc.New == "unrestricted" {
			b.Unrestricted++
		}
	}
}
