package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestPushCampaign runs the example and checks the campaign: an audience
// without the users who said no, paged, its provision recorded, the user
// who refused meanwhile refused at send time, every push sent recorded in
// the ledger with its decision.
func TestPushCampaign(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{
		`80 users; audience of "interest:ski & region:bj" on sms, targeted: 48 users`,
		"provision recorded: 48 user IDs to sms-vendor for marketing",
		"  page 5: 8 users",
		"sent 47 pushes in 5 pages (1 refused at send time)",
		"the next audience: 47 users",
		"ledger: 47 pushes, 1 provision",
		"user21's ledger: push on sms, campaign winter-sale, allowed under record version 2 (reason allowed)",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "page 6") {
		t.Errorf("more pages than the audience needs:\n%s", s)
	}
}
