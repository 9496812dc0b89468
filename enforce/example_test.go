package enforce_test

import (
	"context"
	"fmt"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/enforce"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
)

// An enforcement audit of the embedded store: alice turned
// personalization off and refused SMS; the app kept personalizing for her
// (once inside the propagation allowance, once beyond it) and sent an
// SMS campaign.
func ExampleRun() {
	ctx := context.Background()
	st, err := memory.Open(ctx, memory.Options{})
	if err != nil {
		panic(err)
	}
	defer st.Close()

	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	off := consent.SetPersonalization("alice", false)
	off.At = t0
	sms := consent.RefuseChannel("alice", "sms")
	sms.At = t0.Add(time.Minute)
	for _, ch := range []consent.Change{off, sms} {
		if _, err := st.Apply(ctx, ch); err != nil {
			panic(err)
		}
	}
	err = st.AppendLedger(ctx, []store.LedgerEntry{
		{Kind: store.LedgerExposure, UserID: "alice", At: t0.Add(-time.Hour), Mode: store.ModePersonalized}, // before: fine
		{Kind: store.LedgerExposure, UserID: "alice", At: t0.Add(500 * time.Millisecond), Mode: store.ModePersonalized},
		{Kind: store.LedgerExposure, UserID: "alice", At: t0.Add(90 * time.Second), Mode: store.ModePersonalized},
		{Kind: store.LedgerPush, UserID: "alice", At: t0.Add(time.Hour), Channel: "sms", Campaign: "spring-sale"},
		{Kind: store.LedgerPush, UserID: "alice", At: t0.Add(time.Hour), Channel: "push"}, // not refused, not targeted: fine
	})
	if err != nil {
		panic(err)
	}

	rep, err := enforce.Run(ctx, st, enforce.Options{})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d entries of %d users, %d receipts replayed\n", rep.Entries, rep.Users, rep.Receipts)
	for _, v := range rep.Violations {
		fmt.Printf("%s %s at %s, %.0f s after the receipt: %s\n", v.Kind, v.User, v.At.Format(time.TimeOnly), v.LagMS/1000, v.Detail)
	}
	fmt.Printf("within the %s allowance: %d\n", rep.Allowance, rep.WithinAllowance.All)
	// Output:
	// 5 entries of 1 users, 2 receipts replayed
	// personalized_after_opt_out alice at 09:01:30, 90 s after the receipt: a personalized exposure after the user turned personalization off (Art. 42)
	// push_on_refused_channel alice at 10:00:00, 3540 s after the receipt: a push on "sms" after the user refused the channel (Art. 42)
	// within the 2s allowance: 1
}
