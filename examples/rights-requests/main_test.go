package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestRightsRequests runs the example and checks each request: access
// lists the tags with their source, the export holds the record and
// receipts, a deleted tag cannot be inferred again, a correction replaces
// the tag, and after erasure nothing personal is left to read, the
// answers fail closed and the certificate says what is kept.
func TestRightsRequests(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{
		"access: version 4, tags [interest:golf (inferred, usable true), interest:ski (declared, usable true), region:sh (inferred, usable true)], deleted [], refused [sms], erased false, 4 receipts (0 redacted), decision personalized",
		"record version 4 with 3 tags, 4 receipts",
		"delete interest:golf; the pipeline infers it again: refused true",
		"after deleting and correcting: version 6, tags [interest:ski (declared, usable true), region:bj (declared, usable true)], deleted [interest:golf, region:sh]",
		"after erasure: version 7, tags [], deleted [], refused [], erased true, 7 receipts (7 redacted), decision erased",
		"decide: personalized false (erased); push allowed false (erased)",
		"export after erasure: erased true, 0 tags, 0 receipts; certificate:",
		"6 kinds of data deleted, 2 things kept",
		"receipts in storage: 7, redacted 7, with personal content 0",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the output lacks %q:\n%s", want, s)
		}
	}
}
