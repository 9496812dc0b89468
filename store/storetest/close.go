package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

func testClose(t *testing.T, newStore newStoreFunc) {
	parallel(t, "calls after Close fail with ErrClosed", newStore, func(t *testing.T, s store.Store) {
		const u = "closed-user"
		mustApplyEffective(t, s, consent.SetPersonalization(u, false))
		set := mustSettings(t, s)
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		ctx := t.Context()
		calls := []struct {
			name string
			call func() error
		}{
			{"Get", func() error { _, err := s.Get(ctx, u); return err }},
			{"Apply", func() error { _, err := s.Apply(ctx, consent.SetPersonalization(u, true)); return err }},
			{"Receipts", func() error { _, err := s.Receipts(ctx, u); return err }},
			{"ReadChangelog", func() error { _, err := s.ReadChangelog(ctx, 0, "", 10, 0); return err }},
			{"blocking ReadChangelog", func() error { _, err := s.ReadChangelog(ctx, 0, "", 10, shortBlock); return err }},
			{"Tail", func() error { _, err := s.Tail(ctx, 0); return err }},
			{"Settings", func() error { _, err := s.Settings(ctx); return err }},
			{"SetSettings", func() error {
				_, _, err := s.SetSettings(ctx, set, consent.ActorAdmin, consent.SurfaceAdminConsole)
				return err
			}},
			{"SettingsReceipts", func() error { _, err := s.SettingsReceipts(ctx); return err }},
			{"PurgeExpired", func() error { _, err := s.PurgeExpired(ctx, time.Now()); return err }},
			{"ExportUser", func() error { _, err := store.ExportUser(ctx, s, u); return err }},
		}
		for _, c := range calls {
			t.Run(c.name, func(t *testing.T) {
				start := time.Now()
				checkErr(t, c.name+" after Close", c.call(), store.ErrClosed)
				if d := time.Since(start); d > prompt {
					t.Errorf("%s after Close took %v, want at once", c.name, d)
				}
			})
		}
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("second Close: %v, want nil or an error wrapping store.ErrClosed", err)
		}
	})
}

func testContext(t *testing.T, newStore newStoreFunc) {
	const block = 5 * time.Second
	parallel(t, "cancelled while blocking", newStore, func(t *testing.T, s store.Store) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(writeDelay, cancel)
		start := time.Now()
		evs, err := s.ReadChangelog(ctx, 0, "", 10, block)
		d := time.Since(start)
		checkErr(t, "ReadChangelog cancelled while blocking", err, context.Canceled)
		if len(evs) != 0 {
			t.Errorf("ReadChangelog cancelled while blocking returned %d events", len(evs))
		}
		if d > writeDelay+prompt {
			t.Errorf("ReadChangelog returned %v after the start, want soon after the cancel at %v (block %v)", d, writeDelay, block)
		}
	})
	parallel(t, "cancelled before the call", newStore, func(t *testing.T, s store.Store) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		start := time.Now()
		_, err := s.ReadChangelog(ctx, 0, "", 10, block)
		checkErr(t, "blocking ReadChangelog with a cancelled context", err, context.Canceled)
		if d := time.Since(start); d > prompt {
			t.Errorf("blocking ReadChangelog with a cancelled context took %v, want at once", d)
		}
	})
	parallel(t, "deadline while blocking", newStore, func(t *testing.T, s store.Store) {
		ctx, cancel := context.WithTimeout(t.Context(), writeDelay)
		defer cancel()
		start := time.Now()
		_, err := s.ReadChangelog(ctx, store.SettingsLog, mustTail(t, s, store.SettingsLog), 10, block)
		d := time.Since(start)
		checkErr(t, "ReadChangelog past its deadline", err, context.DeadlineExceeded)
		if d > writeDelay+prompt {
			t.Errorf("ReadChangelog returned %v after the start, want soon after the deadline at %v (block %v)", d, writeDelay, block)
		}
	})
}
