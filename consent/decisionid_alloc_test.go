//go:build !race

package consent_test

import "testing"

// Signing a decision ID (on every answer of the decision endpoint)
// allocates only the ID's text: the MAC state is reused. (Not under -race,
// where sync.Pool drops what it holds at random.)
func TestDecisionIDSignAllocations(t *testing.T) {
	sd := sampleDecisions()[2]
	if n := testing.AllocsPerRun(200, func() { _, _ = sd.Sign(testDecisionKey, "alice") }); n > 1 {
		t.Errorf("Sign: %.0f allocations, want 1 (the ID's text)", n)
	}
}
