// Command recommend-with-opt-out shows Recommend with two rankers: a
// personalized one that may use the tags recguard hands it, and a fallback
// (what is popular) that sees nothing personal. Recommend runs the
// personalized ranker only when the user's consent allows it, and hands it
// only the tags it may use: none a user deleted, no sensitive tag without
// its separate consent (Art. 22). Users who turned personalization off
// (Art. 42), minors without their guardian's consent and users who
// restricted processing (Art. 23) get the fallback, and the answer says
// why. Every answer is recorded as outcome events for Art. 46 audits
// (sdk.OutcomeSink), except a restricted user's.
//
//	go run ./examples/recommend-with-opt-out
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"strings"

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

// catalog maps a tag to the items a personalized ranker shows for it.
var catalog = map[tags.Tag][]string{
	"interest:ski":            {"ski-pass", "goggles"},
	"interest:chess":          {"chess-clock"},
	"interest:running":        {"trail-shoes"},
	"medical_health:diabetes": {"glucose-meter"},
}

// popular is what the fallback ranker shows everyone.
var popular = []string{"bestseller-1", "bestseller-2", "bestseller-3"}

// personalized ranks by the tags it is given, then what is popular.
func personalized(_ context.Context, req sdk.RankRequest) ([]string, error) {
	var items []string
	for _, t := range req.Tags {
		items = append(items, catalog[t]...)
	}
	return append(items, popular[0]), nil
}

// fallback uses nothing personal: req.Tags is always empty here.
func fallback(_ context.Context, req sdk.RankRequest) ([]string, error) {
	if len(req.Tags) > 0 {
		return nil, fmt.Errorf("the fallback ranker was handed tags %v", req.Tags)
	}
	return popular, nil
}

func run(ctx context.Context, w io.Writer) error {
	st, err := memory.Open(ctx, memory.Options{}) // no directory: in memory only
	if err != nil {
		return err
	}
	defer st.Close()
	cfg := sdk.DefaultConfig()
	cfg.ExposureSink = sdk.OutcomeSink(st) // every answer, as outcome events for audits
	c, err := sdk.New(ctx, st, cfg)
	if err != nil {
		return err
	}
	defer c.Close()

	ski, chess, running := tags.MustParse("interest:ski"), tags.MustParse("interest:chess"), tags.MustParse("interest:running")
	diabetes := tags.MustParse("medical_health:diabetes")
	for _, ch := range []consent.Change{
		consent.DeclareTag("alice", ski), consent.InferTag("alice", chess),
		consent.InferTag("bob", ski), consent.SetPersonalization("bob", false), // Art. 42: bob opted out
		consent.SetMinor("carol", true), // a minor; no guardian consent yet
		consent.InferTag("dave", running),
		consent.GrantSensitive("dave", tags.MedicalHealth, consent.PurposePersonalization), // Art. 22: the separate consent
		consent.DeclareTag("dave", diabetes),
		consent.InferTag("erin", ski), consent.Restrict("erin"), // Art. 23: storage only
	} {
		if _, err := c.Apply(ctx, ch); err != nil {
			return fmt.Errorf("%s %s: %w", ch.UserID, ch.Op, err)
		}
	}
	recommend := func(label, user string) error {
		res, err := c.Recommend(ctx, user, personalized, fallback)
		if err != nil {
			return err
		}
		ranker := "fallback"
		if res.Personalized {
			ranker = "personalized"
		}
		fmt.Fprintf(w, "%-46s %-12s reason=%-30s items=%s\n", label, ranker, res.Reason, strings.Join(res.Items, ","))
		return nil
	}
	for _, u := range []struct{ label, user string }{
		{"alice (ski, chess):", "alice"},
		{"bob (ski, personalization off):", "bob"},
		{"carol (a minor, no guardian consent):", "carol"},
		{"dave (running, diabetes with its consent):", "dave"},
		{"erin (ski, restricted processing):", "erin"},
	} {
		if err := recommend(u.label, u.user); err != nil {
			return err
		}
	}

	fmt.Fprintln(w)
	// Consent withdrawn: the sensitive tag goes with it.
	if _, err := c.Apply(ctx, consent.WithdrawSensitive("dave", tags.MedicalHealth)); err != nil {
		return err
	}
	if err := recommend("dave withdraws the medical_health consent:", "dave"); err != nil {
		return err
	}
	// The guardian consents: carol's answers may now be personalized.
	if _, err := c.Apply(ctx, consent.GuardianConsent("carol", "guardian-record-17")); err != nil {
		return err
	}
	if _, err := c.Apply(ctx, consent.DeclareTag("carol", chess)); err != nil {
		return err
	}
	if err := recommend("carol's guardian consents, carol likes chess:", "carol"); err != nil {
		return err
	}
	// bob turns it back on, then deletes the ski tag: it stays deleted.
	for _, ch := range []consent.Change{consent.SetPersonalization("bob", true), consent.DeleteTag("bob", ski)} {
		if _, err := c.Apply(ctx, ch); err != nil {
			return err
		}
	}
	if err := recommend("bob turns it on again, deletes ski:", "bob"); err != nil {
		return err
	}

	// The exposures reach the outcome log in the background: Close
	// writes what is queued.
	if err := c.Close(); err != nil {
		return err
	}
	perUser := map[string]int{}
	if err := st.ReadOutcomes(ctx, func(ev []byte) error {
		for _, u := range []string{"alice", "bob", "carol", "dave", "erin"} {
			if strings.Contains(string(ev), `"user":"`+u+`"`) {
				perUser[u]++
			}
		}
		return nil
	}); err != nil {
		return err
	}
	fmt.Fprintf(w, "\noutcome events recorded for audits: alice %d, bob %d, carol %d, dave %d, erin %d (restricted: none)\n",
		perUser["alice"], perUser["bob"], perUser["carol"], perUser["dave"], perUser["erin"])
	return nil
}
