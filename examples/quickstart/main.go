// Command quickstart shows recguard from an app backend's side: the sdk
// client on the embedded store. A user has tags, turns personalized
// recommendation off (Art. 42) and on again, deletes a tag that then stays
// deleted, refuses a push channel; every answer says why, and every change
// left a receipt in a hash chain.
//
//	go run ./examples/quickstart
//
// It keeps its data in a temporary directory, removed at exit, and prints
// what happens at each step.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/store/memory"
	"github.com/recguard/recguard/tags"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, w io.Writer) error {
	dir, err := os.MkdirTemp("", "recguard-quickstart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// The store: the embedded one here; store/redis in production.
	st, err := memory.Open(ctx, memory.Options{Dir: dir})
	if err != nil {
		return err
	}
	defer st.Close()
	// The client answers from a cache kept current by following the
	// store's changelogs.
	c, err := sdk.New(ctx, st, sdk.DefaultConfig())
	if err != nil {
		return err
	}
	defer c.Close()

	const alice = "alice"
	ski := tags.MustParse("interest:ski")
	show := func(step string) error {
		d, err := c.Decide(ctx, alice) // on every recommendation
		if err != nil {
			return err
		}
		ok, why, err := c.CanPush(ctx, alice, "sms", true) // before a targeted sms
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%-38s personalized=%-5t reason=%-20s tags=%v targeted sms=%t (%s)\n", step+":", d.Personalized, d.Reason, d.Tags, ok, why)
		return nil
	}
	apply := func(ch consent.Change) error {
		_, err := c.Apply(ctx, ch) // record + receipt + changelog, atomically; visible to c at once
		return err
	}

	fmt.Fprintf(w, "embedded store in %s\n\n", dir)
	if err := apply(consent.DeclareTag(alice, ski)); err != nil {
		return err
	}
	if err := apply(consent.InferTag(alice, tags.MustParse("region:sh"))); err != nil {
		return err
	}
	if err := show("1. alice has two tags"); err != nil {
		return err
	}

	// Art. 42: one switch turns personalized recommendation off.
	if err := apply(consent.SetPersonalization(alice, false)); err != nil {
		return err
	}
	if err := show("2. alice turns personalization off"); err != nil {
		return err
	}
	if err := apply(consent.SetPersonalization(alice, true)); err != nil {
		return err
	}
	if err := show("3. and on again"); err != nil {
		return err
	}

	// Art. 42: a deleted tag stays deleted.
	if err := apply(consent.DeleteTag(alice, ski)); err != nil {
		return err
	}
	if err := show("4. alice deletes interest:ski"); err != nil {
		return err
	}
	err = apply(consent.InferTag(alice, ski))
	fmt.Fprintf(w, "%-38s refused=%t (%v)\n", "5. the pipeline infers it again:", errors.Is(err, tags.ErrSuppressed), err)

	// Per-channel refusals.
	if err := apply(consent.RefuseChannel(alice, "sms")); err != nil {
		return err
	}
	if err := show("6. alice refuses sms"); err != nil {
		return err
	}
	ok, why, err := c.CanPush(ctx, alice, "push", false)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%-38s allowed=%t (%s)\n", "7. an untargeted app push:", ok, why)

	// Every change left a receipt; the chain shows any edit or gap.
	p, err := c.Profile(ctx, alice) // Art. 23: everything held, read fresh
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nreceipts of %s:\n", alice)
	for _, r := range p.Receipts {
		fmt.Fprintf(w, "  #%d %-20s %-15s by %-6s via %-12s %s -> %s\n", r.Seq, r.Op, r.Subject, r.Actor, r.Surface, r.Old, r.New)
	}
	rec, err := st.Get(ctx, alice)
	if err != nil {
		return err
	}
	set := c.Settings()
	verr := consent.VerifyChain(p.Receipts, consent.HeadOf(rec, &set, time.Now()), nil)
	fmt.Fprintf(w, "receipt chain verifies: %t\n", verr == nil)
	return verr
}
