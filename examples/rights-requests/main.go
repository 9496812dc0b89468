// Command rights-requests shows a user's rights requests handled through
// recguard: access (Art. 23: everything held, with each tag's source and
// whether it may be used now), a copy in a portable format (Art. 25:
// store.ExportUser, the document GET /v1/users/{id}/export answers),
// deleting a tag (it stays deleted), correcting one, and erasure
// (Art. 24): afterwards nothing personal of the user can be read, the
// answers for them fail closed, and what is kept (a tombstone, receipts
// without personal content) is listed in an erasure certificate.
//
//	go run ./examples/rights-requests
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"strings"

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

const user = "alice"

func run(ctx context.Context, w io.Writer) error {
	st, err := memory.Open(ctx, memory.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := sdk.New(ctx, st, sdk.DefaultConfig())
	if err != nil {
		return err
	}
	defer c.Close()
	for _, ch := range []consent.Change{
		consent.DeclareTag(user, tags.MustParse("interest:ski")),
		consent.InferTag(user, tags.MustParse("interest:golf")),
		consent.InferTag(user, tags.MustParse("region:sh")),
		consent.RefuseChannel(user, "sms"),
	} {
		if _, err := c.Apply(ctx, ch); err != nil {
			return err
		}
	}

	// Access (Art. 23): read fresh from the store, never from the cache.
	access := func(step string) error {
		p, err := c.Profile(ctx, user)
		if err != nil {
			return err
		}
		var ts []string
		for _, t := range p.Tags {
			ts = append(ts, fmt.Sprintf("%s (%s, usable %t)", t.Tag, t.Source, t.Usable))
		}
		var sup []string
		for _, s := range p.Suppressed {
			sup = append(sup, string(s.Tag))
		}
		redacted := 0
		for _, r := range p.Receipts {
			if r.Redacted {
				redacted++
			}
		}
		fmt.Fprintf(w, "%s: version %d, tags [%s], deleted [%s], refused %v, erased %t, %d receipts (%d redacted), decision %s\n",
			step, p.Version, strings.Join(ts, ", "), strings.Join(sup, ", "), p.State.RefusedChannels, p.State.Erased, len(p.Receipts), redacted, p.Decision.Reason)
		return nil
	}
	if err := access("access"); err != nil {
		return err
	}

	// A copy (Art. 25): everything held, as portable JSON.
	exp, err := store.ExportUser(ctx, st, user)
	if err != nil {
		return err
	}
	doc, err := json.Marshal(exp)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "export: %d bytes of JSON: record version %d with %d tags, %d receipts\n", len(doc), exp.Record.Version, len(exp.Record.Tags.Entries), len(exp.Receipts))

	// Delete a tag: deleted and suppressed, so no pipeline brings it back.
	if _, err := c.Apply(ctx, consent.DeleteTag(user, tags.MustParse("interest:golf"))); err != nil {
		return err
	}
	_, err = c.Apply(ctx, consent.InferTag(user, tags.MustParse("interest:golf")))
	fmt.Fprintf(w, "delete interest:golf; the pipeline infers it again: refused %t\n", err != nil)
	// Correct a tag: the wrong one goes (and stays gone), the right one is
	// the user's own declaration.
	if _, err := c.Apply(ctx, consent.CorrectTag(user, tags.MustParse("region:sh"), tags.MustParse("region:bj"))); err != nil {
		return err
	}
	if err := access("after deleting and correcting"); err != nil {
		return err
	}

	// Erasure (Art. 24).
	if _, err := c.Apply(ctx, consent.Erase(user)); err != nil {
		return err
	}
	if err := access("after erasure"); err != nil {
		return err
	}
	d, err := c.Decide(ctx, user)
	if err != nil {
		return err
	}
	ok, why, err := c.CanPush(ctx, user, "push", false)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "decide: personalized %t (%s); push allowed %t (%s)\n", d.Personalized, d.Reason, ok, why)
	exp, err = store.ExportUser(ctx, st, user)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "export after erasure: erased %t, %d tags, %d receipts; certificate: erased at %s by %s, %d kinds of data deleted, %d things kept\n",
		exp.Record.State.Erased, len(exp.Record.Tags.Entries), len(exp.Receipts), exp.Erasure.ErasedAt.Format("2006-01-02"), exp.Erasure.By,
		len(exp.Erasure.Deleted), len(exp.Erasure.Retained))
	for _, r := range exp.Erasure.Retained {
		fmt.Fprintf(w, "  kept: %s\n", r.What)
	}
	// The receipts stay for their retention, in storage only, redacted: an
	// auditor can verify the chain, nobody can read what they said.
	rcs, err := st.Receipts(ctx, user)
	if err != nil {
		return err
	}
	redacted, personal := 0, 0
	for _, r := range rcs {
		if r.Redacted {
			redacted++
		}
		if r.Subject != "" || r.Old != "" || r.New != "" {
			personal++
		}
	}
	fmt.Fprintf(w, "receipts in storage: %d, redacted %d, with personal content %d\n", len(rcs), redacted, personal)
	return nil
}
