package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

// testTimeline checks the consent timeline (store.ConsentTimeline): counts
// by day and kind, today's state, the window, erased users' redacted
// receipts counted as unreadable, and nothing personal in it.
func testTimeline(t *testing.T, newStore newStoreFunc) {
	parallel(t, "counts by day and kind, and today's state", newStore, func(t *testing.T, s store.Store) {
		if _, ok := s.(store.UserLister); !ok {
			t.Skip("store cannot list its users")
		}
		day := time.Now().UTC().Truncate(24 * time.Hour).Add(-10 * 24 * time.Hour)
		d := func(n int, h int) time.Time {
			return day.Add(time.Duration(n)*24*time.Hour + time.Duration(h)*time.Hour)
		}
		for _, ch := range []consent.Change{
			at(consent.SetPersonalization("tl-a", false), d(0, 1)),
			at(consent.SetPersonalization("tl-b", false), d(0, 2)),
			at(consent.RefuseChannel("tl-a", "sms"), d(0, 3)),
			at(consent.SetPersonalization("tl-b", true), d(1, 1)),
			at(consent.RefuseChannel("tl-c", "sms"), d(1, 2)),
			at(consent.RefuseChannel("tl-c", "email"), d(1, 3)),
			at(consent.AllowChannel("tl-c", "email"), d(2, 1)),
			at(consent.Restrict("tl-d"), d(2, 2)),
			at(consent.SetPersonalization("tl-e", false), d(3, 1)),
			at(consent.RefuseChannel("tl-e", "sms"), d(3, 2)),
			at(consent.Erase("tl-e"), d(4, 1)),
		} {
			mustApplyEffective(t, s, ch)
		}
		tl, err := store.ConsentTimeline(t.Context(), s, store.TimelineOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if tl.Users != 5 || tl.Receipts != 11 || len(tl.Buckets) != 5 {
			t.Fatalf("users %d receipts %d buckets %d, want 5, 11, 5: %+v", tl.Users, tl.Receipts, len(tl.Buckets), tl)
		}
		b := tl.Buckets
		if !b[0].Start.Equal(d(0, 0)) || b[0].PersonalizationOff != 2 || b[0].Refused["sms"] != 1 {
			t.Errorf("day 0: %+v", b[0])
		}
		if b[1].PersonalizationOn != 1 || b[1].Refused["sms"] != 1 || b[1].Refused["email"] != 1 {
			t.Errorf("day 1: %+v", b[1])
		}
		if b[2].Allowed["email"] != 1 || b[2].Restricted != 1 {
			t.Errorf("day 2: %+v", b[2])
		}
		// tl-e was erased: its receipts no longer say which way they went.
		if b[3].Unreadable != 2 || b[3].PersonalizationOff != 0 || len(b[3].Refused) != 0 {
			t.Errorf("day 3 (erased user's changes): %+v", b[3])
		}
		if b[4].Erased != 1 {
			t.Errorf("day 4: %+v", b[4])
		}
		now := tl.Now
		if now.Users != 5 || now.PersonalizationOff != 1 || now.Refused["sms"] != 2 || now.Refused["email"] != 0 || now.Restricted != 1 || now.Erased != 1 {
			t.Errorf("now: %+v", now)
		}
		// The window and the bucket width.
		w, err := store.ConsentTimeline(t.Context(), s, store.TimelineOptions{From: d(1, 0), To: d(3, 0), Bucket: 48 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if w.Receipts != 5 || len(w.Buckets) == 0 {
			t.Errorf("window: %+v", w)
		}
		var on, allowed int64
		for _, x := range w.Buckets {
			on += x.PersonalizationOn
			allowed += x.Allowed["email"]
			if x.PersonalizationOff != 0 || x.Erased != 0 {
				t.Errorf("window counts a change outside it: %+v", x)
			}
		}
		if on != 1 || allowed != 1 {
			t.Errorf("window: on %d allowed %d", on, allowed)
		}
		// Bad options change nothing and say why.
		for _, o := range []store.TimelineOptions{{Bucket: time.Minute}, {From: d(2, 0), To: d(1, 0)}} {
			if _, err := store.ConsentTimeline(t.Context(), s, o); !errors.Is(err, store.ErrInvalidTimeline) {
				t.Errorf("%+v: %v", o, err)
			}
		}
	})
}
