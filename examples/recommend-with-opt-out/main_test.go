package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestRecommendWithOptOut runs the example and checks which ranker served
// each user, why, and with which items: no opted-out, minor or restricted
// user gets the personalized ranker, no withdrawn sensitive tag or deleted
// tag reaches it, and no restricted user's exposure is recorded.
func TestRecommendWithOptOut(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	// Compare with single spaces: the columns' widths do not matter.
	s := strings.Join(strings.Fields(out.String()), " ")
	for _, want := range []string{
		"alice (ski, chess): personalized reason=personalized items=chess-clock,ski-pass,goggles,bestseller-1",
		"bob (ski, personalization off): fallback reason=personalization_off items=bestseller-1,bestseller-2,bestseller-3",
		"carol (a minor, no guardian consent): fallback reason=minor_without_guardian_consent items=bestseller-1,bestseller-2,bestseller-3",
		"dave (running, diabetes with its consent): personalized reason=personalized items=trail-shoes,glucose-meter,bestseller-1",
		"erin (ski, restricted processing): fallback reason=restricted items=bestseller-1,bestseller-2,bestseller-3",
		"dave withdraws the medical_health consent: personalized reason=personalized items=trail-shoes,bestseller-1",
		"carol's guardian consents, carol likes chess: personalized reason=personalized items=chess-clock,bestseller-1",
		"bob turns it on again, deletes ski: personalized reason=personalized items=bestseller-1",
		"outcome events recorded for audits: alice 4, bob 4, carol 5, dave 5, erin 0",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the output lacks %q:\n%s", want, out.String())
		}
	}
}
