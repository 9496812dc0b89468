package sdk_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/store/memory"
	"github.com/recguard/recguard/tags"
)

// openExample returns a client on an embedded store (no data directory).
func openExample() (*sdk.Client, func()) {
	ctx := context.Background()
	st, err := memory.Open(ctx, memory.Options{})
	if err != nil {
		panic(err)
	}
	c, err := sdk.New(ctx, st, sdk.DefaultConfig())
	if err != nil {
		panic(err)
	}
	return c, func() { c.Close(); st.Close() }
}

func ExampleClient_Decide() {
	c, done := openExample()
	defer done()
	ctx := context.Background()

	c.Apply(ctx, consent.DeclareTag("alice", tags.MustParse("interest:ski")))
	d, _ := c.Decide(ctx, "alice")
	fmt.Println(d.Personalized, d.Reason, d.Tags)

	// Art. 42: the switch. Visible to this client at once.
	c.Apply(ctx, consent.SetPersonalization("alice", false))
	d, _ = c.Decide(ctx, "alice")
	fmt.Println(d.Personalized, d.Reason, d.Tags)
	// Output:
	// true personalized [interest:ski]
	// false personalization_off []
}

func ExampleClient_CanPush() {
	c, done := openExample()
	defer done()
	ctx := context.Background()

	c.Apply(ctx, consent.RefuseChannel("bob", "sms"))
	c.Apply(ctx, consent.SetPersonalization("bob", false))
	for _, q := range []struct {
		channel  string
		targeted bool
	}{{"sms", false}, {"push", false}, {"push", true}} {
		ok, why, _ := c.CanPush(ctx, "bob", q.channel, q.targeted)
		fmt.Printf("%s targeted=%t: %t (%s)\n", q.channel, q.targeted, ok, why)
	}
	// Output:
	// sms targeted=false: false (channel_refused)
	// push targeted=false: true (allowed)
	// push targeted=true: false (personalization_off)
}

// Every answer carries its basis: the record and settings versions it was
// computed from, its reason and an ID no other answer has, so that it can
// be checked later against the user's receipts.
func ExampleClient_Decide_basis() {
	c, done := openExample()
	defer done()
	ctx := context.Background()

	c.Apply(ctx, consent.DeclareTag("erin", tags.MustParse("interest:ski")))
	c.Apply(ctx, consent.SetPersonalization("erin", false))
	d, _ := c.Decide(ctx, "erin")
	fmt.Println("record version", d.RecordVersion, "reason", d.Reason, "has an ID:", !d.ID.IsZero())
	again, _ := c.Decide(ctx, "erin")
	fmt.Println("same basis, new ID:", again.RecordVersion == d.RecordVersion && again.SettingsVersion == d.SettingsVersion, again.ID != d.ID)
	// Output:
	// record version 2 reason personalization_off has an ID: true
	// same basis, new ID: true true
}

func ExampleClient_DecidePush() {
	c, done := openExample()
	defer done()
	ctx := context.Background()

	c.Apply(ctx, consent.RefuseChannel("fay", "sms"))
	for _, ch := range []string{"sms", "push"} {
		p, _ := c.DecidePush(ctx, "fay", ch, false)
		fmt.Printf("%s: %t (%s) on record version %d\n", p.Channel, p.Allowed, p.Reason, p.RecordVersion)
	}
	// Output:
	// sms: false (channel_refused) on record version 1
	// push: true (allowed) on record version 1
}

func ExampleClient_Recommend() {
	c, done := openExample()
	defer done()
	ctx := context.Background()

	c.Apply(ctx, consent.DeclareTag("carol", tags.MustParse("interest:chess")))
	personalized := func(_ context.Context, r sdk.RankRequest) ([]string, error) {
		return []string{"for-you:" + strings.TrimPrefix(string(r.Tags[0]), "interest:")}, nil
	}
	popular := func(context.Context, sdk.RankRequest) ([]string, error) {
		return []string{"popular:today"}, nil
	}
	res, _ := c.Recommend(ctx, "carol", personalized, popular)
	fmt.Println(res.Items, res.Personalized, res.Reason)

	c.Apply(ctx, consent.SetPersonalization("carol", false))
	res, _ = c.Recommend(ctx, "carol", personalized, popular)
	fmt.Println(res.Items, res.Personalized, res.Reason)
	// Output:
	// [for-you:chess] true personalized
	// [popular:today] false personalization_off
}

func ExampleClient_Profile() {
	c, done := openExample()
	defer done()
	ctx := context.Background()

	c.Apply(ctx, consent.DeclareTag("dan", tags.MustParse("interest:golf")))
	c.Apply(ctx, consent.InferTag("dan", tags.MustParse("region:sh")))
	c.Apply(ctx, consent.DeleteTag("dan", tags.MustParse("region:sh")))
	p, _ := c.Profile(ctx, "dan")
	for _, t := range p.Tags {
		fmt.Println(t.Tag, t.Source, "usable:", t.Usable)
	}
	for _, s := range p.Suppressed {
		fmt.Println("suppressed:", s.Tag)
	}
	fmt.Println("receipts:", len(p.Receipts))
	// Output:
	// interest:golf declared usable: true
	// suppressed: region:sh
	// receipts: 3
}

// RecordPush records a push the app sent in the ledger, with the basis of
// the DecidePush answer it was sent under, so an enforcement audit can show
// the push respected the user's choices. Queuing never blocks; a store
// write happens in the background, in batches.
func ExampleClient_RecordPush() {
	ctx := context.Background()
	st, err := memory.Open(ctx, memory.Options{})
	if err != nil {
		panic(err)
	}
	defer st.Close()
	c, err := sdk.New(ctx, st, sdk.Config{Ledger: st})
	if err != nil {
		panic(err)
	}

	c.Apply(ctx, consent.DeclareTag("dave", tags.MustParse("interest:ski")))
	d, _ := c.DecidePush(ctx, "dave", "sms", true)
	if d.Allowed {
		// ... hand the message to the SMS vendor, then:
		if err := c.RecordPush(ctx, sdk.Push{UserID: "dave", Campaign: "winter-sale", Decision: d}); err != nil {
			fmt.Println("not recorded:", err) // sdk.ErrLedgerFull: dropped and counted
		}
	}
	c.Close() // writes what is queued

	led, _ := st.UserLedger(ctx, "dave")
	for _, e := range led {
		fmt.Println(e.Kind, e.Channel, e.Targeted, e.Campaign, e.Mode, e.Decided, e.DecisionID == d.ID)
	}
	// Output:
	// push sms true winter-sale allowed true true
}
