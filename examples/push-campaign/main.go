// Command push-campaign shows a targeted push campaign: the audience of a
// segment on a channel (sdk.Client.Audience: users who refused the
// channel, opted out of personalization, are minors without guardian
// consent, restricted processing or were erased are left out), handed over
// page by page, the provision of the audience to the push vendor recorded
// (Art. 12) before it goes out, and each push checked (DecidePush) and
// recorded in the ledger with the basis of its decision (RecordPush), so an
// enforcement audit can show later that every push respected the user's
// choices at the time.
//
//	go run ./examples/push-campaign
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"strconv"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	"github.com/recguard/recguard/tags"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

const (
	segment  = "interest:ski & region:bj" // a segment expression over tags and consent facts
	channel  = "sms"
	campaign = "winter-sale"
	pageSize = 10
)

func run(ctx context.Context, w io.Writer) error {
	st, err := memory.Open(ctx, memory.Options{})
	if err != nil {
		return err
	}
	defer st.Close()

	// 60 users who like skiing, in Beijing, and 20 elsewhere; some of the
	// skiers said no in one way or another.
	users := 0
	apply := func(chs ...consent.Change) error {
		for _, ch := range chs {
			if _, err := st.Apply(ctx, ch); err != nil {
				return fmt.Errorf("%s %s: %w", ch.UserID, ch.Op, err)
			}
		}
		return nil
	}
	ski := tags.MustParse("interest:ski")
	for i := range 80 {
		u := "user" + strconv.Itoa(i)
		region := "region:bj"
		if i >= 60 {
			region = "region:sh"
		}
		if err := apply(consent.InferTag(u, ski), consent.DeclareTag(u, tags.MustParse(region))); err != nil {
			return err
		}
		users++
		switch {
		case i < 5:
			err = apply(consent.RefuseChannel(u, channel)) // refused sms
		case i < 9:
			err = apply(consent.SetPersonalization(u, false)) // Art. 42: no targeted push
		case i < 11:
			err = apply(consent.Restrict(u)) // Art. 23: storage only
		case i < 12:
			err = apply(consent.Erase(u)) // Art. 24
		}
		if err != nil {
			return err
		}
	}

	// The client keeps an audience index (roaring bitmaps, fed by the
	// changelog) and writes the ledger of pushes and provisions.
	cfg := sdk.DefaultConfig()
	cfg.Audiences = true
	cfg.Ledger = st
	c, err := sdk.New(ctx, st, cfg)
	if err != nil {
		return err
	}
	defer c.Close()

	aud, err := c.Audience(ctx, segment, channel, true)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%d users; audience of %q on %s, targeted: %d users\n", users, segment, channel, aud.Count())

	// Art. 12: record the provision before the audience leaves.
	if err := c.RecordProvision(ctx, sdk.Provision{Recipient: "sms-vendor", Purpose: "marketing", Segment: segment,
		Channel: channel, Targeted: true, Count: int(aud.Count())}); err != nil {
		return err
	}
	fmt.Fprintf(w, "provision recorded: %d user IDs to sms-vendor for marketing\n", aud.Count())

	// Meanwhile a user in the audience refuses sms: the check at send
	// time catches it.
	if _, err := c.Apply(ctx, consent.RefuseChannel("user20", channel)); err != nil {
		return err
	}
	fmt.Fprintln(w, "meanwhile user20 refuses sms")

	sent, refused, pages := 0, 0, 0
	for cursor := uint32(0); ; {
		ids, next := aud.Page(cursor, pageSize)
		if len(ids) == 0 {
			break
		}
		pages++
		for _, id := range ids {
			// Check again at send time: a user may have said no since the
			// audience was built.
			d, err := c.DecidePush(ctx, id, channel, true)
			if err != nil {
				return err
			}
			if !d.Allowed {
				refused++
				continue
			}
			// ... hand the message to the SMS vendor, then record it:
			if err := c.RecordPush(ctx, sdk.Push{UserID: id, Campaign: campaign, Decision: d, Tags: []tags.Tag{ski}}); err != nil {
				return err
			}
			sent++
		}
		fmt.Fprintf(w, "  page %d: %d users\n", pages, len(ids))
		if next == 0 {
			break
		}
		cursor = next
	}
	fmt.Fprintf(w, "sent %d pushes in %d pages (%d refused at send time)\n", sent, pages, refused)

	// The next audience leaves user20 out (the index follows the
	// changelog: wait for it to catch up).
	for deadline := time.Now().Add(5 * time.Second); ; {
		again, err := c.Audience(ctx, segment, channel, true)
		if err != nil {
			return err
		}
		if again.Count() == aud.Count()-1 || time.Now().After(deadline) {
			fmt.Fprintf(w, "the next audience: %d users\n", again.Count())
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The ledger is written in the background: Close writes what is queued.
	if err := c.Close(); err != nil {
		return err
	}
	counts := map[store.LedgerKind]int{}
	if err := st.ScanLedger(ctx, time.Time{}, time.Time{}, func(e store.LedgerEntry) error {
		counts[e.Kind]++
		return nil
	}); err != nil {
		return err
	}
	fmt.Fprintf(w, "ledger: %d pushes, %d provision\n", counts[store.LedgerPush], counts[store.LedgerProvision])
	led, err := st.UserLedger(ctx, "user21")
	if err != nil {
		return err
	}
	for _, e := range led {
		fmt.Fprintf(w, "user21's ledger: %s on %s, campaign %s, %s under record version %d (reason %s)\n", e.Kind, e.Channel, e.Campaign, e.Mode, e.RecordVersion, e.Reason)
	}
	return nil
}
