package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestQuickstart runs the example and checks what it shows: the opt-out
// and the refusal change the answers at once, the deleted tag stays
// deleted, and the receipt chain verifies.
func TestQuickstart(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{
		"1. alice has two tags:                 personalized=true  reason=personalized         tags=[interest:ski region:sh] targeted sms=true (allowed)",
		"2. alice turns personalization off:    personalized=false reason=personalization_off  tags=[] targeted sms=false (personalization_off)",
		"3. and on again:                       personalized=true  reason=personalized",
		"4. alice deletes interest:ski:         personalized=true  reason=personalized         tags=[region:sh]",
		"5. the pipeline infers it again:       refused=true",
		"6. alice refuses sms:                  personalized=true  reason=personalized         tags=[region:sh] targeted sms=false (channel_refused)",
		"7. an untargeted app push:             allowed=true (allowed)",
		"#6 set_channel          sms             by user   via app_settings allowed -> refused",
		"receipt chain verifies: true",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the output lacks %q:\n%s", want, s)
		}
	}
}
