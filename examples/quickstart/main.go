// Command quickstart shows recguard's foundation on the embedded store: a
// user turns personalized recommendation off (Art. 42), deletes a tag that
// then stays deleted, and every change leaves a receipt in a hash chain.
//
//	go run ./examples/quickstart
//
// It keeps its data in a temporary directory (or -dir) and prints what
// happens at each step.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	"github.com/recguard/recguard/tags"
)

func main() {
	dir := flag.String("dir", "", "data directory (default: a new temporary directory, removed at exit)")
	flag.Parse()
	if *dir == "" {
		d, err := os.MkdirTemp("", "recguard-quickstart-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	if err := run(context.Background(), *dir); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, dir string) error {
	s, err := memory.Open(ctx, memory.Options{Dir: dir})
	if err != nil {
		return err
	}
	defer s.Close()
	set, err := s.Settings(ctx)
	if err != nil {
		return err
	}
	const user = "alice"
	ski := tags.MustParse("interest:ski")
	decide := func(step string) error {
		rec, err := s.Get(ctx, user)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		d := consent.Evaluate(rec.State, rec.Tags, &set)
		ok, why := d.CanPush("push", true)
		fmt.Printf("%-36s personalized=%-5t reason=%-20s tags=%v targeted push=%t (%s)\n", step+":", d.Personalized, d.Reason, d.Tags, ok, why)
		return nil
	}

	fmt.Printf("data directory: %s\n\n", dir)
	if _, err := s.Apply(ctx, consent.DeclareTag(user, ski)); err != nil {
		return err
	}
	if _, err := s.Apply(ctx, consent.InferTag(user, tags.MustParse("region:sh"))); err != nil {
		return err
	}
	if err := decide("1. alice has two tags"); err != nil {
		return err
	}

	// Art. 42: one switch turns personalized recommendation off.
	if _, err := s.Apply(ctx, consent.SetPersonalization(user, false)); err != nil {
		return err
	}
	if err := decide("2. alice turns personalization off"); err != nil {
		return err
	}
	if _, err := s.Apply(ctx, consent.SetPersonalization(user, true)); err != nil {
		return err
	}

	// Art. 42: a deleted tag stays deleted.
	if _, err := s.Apply(ctx, consent.DeleteTag(user, ski)); err != nil {
		return err
	}
	if err := decide("3. alice deletes interest:ski"); err != nil {
		return err
	}
	_, err = s.Apply(ctx, consent.InferTag(user, ski))
	fmt.Printf("%-36s refused: %t (%v)\n", "4. the pipeline infers it again:", errors.Is(err, tags.ErrSuppressed), err)
	// Only alice's own, explicit re-declaration brings it back.
	if _, err := s.Apply(ctx, consent.RedeclareTag(user, ski)); err != nil {
		return err
	}
	if err := decide("5. alice re-declares it herself"); err != nil {
		return err
	}

	// Every change left a receipt; the chain shows any edit or gap.
	rcs, err := s.Receipts(ctx, user)
	if err != nil {
		return err
	}
	fmt.Printf("\nreceipts of %s:\n", user)
	for _, r := range rcs {
		fmt.Printf("  #%d %-20s %-13s by %-6s via %-12s %s -> %s\n", r.Seq, r.Op, r.Subject, r.Actor, r.Surface, r.Old, r.New)
	}
	head, err := s.Get(ctx, user)
	if err != nil {
		return err
	}
	now, err := s.Settings(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("receipt chain verifies: %v\n", consent.VerifyChain(rcs, consent.HeadOf(head, &now, time.Now()), nil) == nil)
	return nil
}
