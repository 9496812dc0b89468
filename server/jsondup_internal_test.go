package server

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckDuplicateKeys: an object naming a member twice anywhere in a
// body is found, with its path; names that encoding/json takes for the same
// field (escapes, case, the Kelvin sign) count as the same; the same name
// in different objects does not; syntax errors are left to the decoder.
func TestCheckDuplicateKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body  string
		field string // the duplicate's path; "-" for none
	}{
		{`{"enabled":false}`, "-"},
		{`{"enabled":false,"enabled":true}`, "enabled"},
		{`{"enabled":false,"surface":"web","enabled":true}`, "enabled"},
		{`{"enabled":false,"\u0065nabled":true}`, "enabled"},
		{`{"enabled":false,"Enabled":true}`, "Enabled"},
		{`{"enabled":false,"ENABLED":true}`, "ENABLED"},
		{"{\"k\":1,\"\u212a\":2}", "\u212a"}, // the Kelvin sign folds to K
		{`{"a":{"b":1,"b":2}}`, "a.b"},
		{`{"a":{"b":1},"b":{"a":1}}`, "-"},
		{`{"a":{"b":1},"a":{"b":1}}`, "a"},
		{`{"events":[{"user":"u","user":"v"}]}`, "events.0.user"},
		{`{"events":[{"user":"u"},{"user":"v"},{"item":"i","item":"j"}]}`, "events.2.item"},
		{`{"events":[[{"x":1}],[{"x":1,"y":[1,{"z":1,"z":2}]}]]}`, "events.1.0.y.1.z"},
		{`{"taxonomy":{"health":{"sensitive":"medical_health"},"health":{}}}`, "taxonomy.health"},
		{`{"a":[],"b":{},"c":null,"d":"x","e":1.5e300,"f":true}`, "-"},
		{`[{"a":1},{"a":1}]`, "-"},
		{`[{"a":1,"a":1}]`, "0.a"},
		{`"x"`, "-"},
		{`12`, "-"},
		{``, "-"},
		{`{"a":1,`, "-"},         // syntax: the decoder's business
		{`{"a":1,"a"`, "a"},      // the duplicate comes before the syntax error
		{`{"a":1} {"a":1}`, "-"}, // one value only
		{`{"a":1}x{"a":1,"a":2}`, "-"},
		{`{"":1,"":2}`, ""}, // the empty name twice
		{`{"a.b":1,"a.b":2}`, "a.b"},
	} {
		err := checkDuplicateKeys(strings.NewReader(tc.body))
		var dup *DuplicateKeyError
		switch {
		case tc.field == "-" && err != nil:
			t.Errorf("%s: %v, want none", tc.body, err)
		case tc.field != "-" && (!errors.As(err, &dup) || dup.Field() != tc.field):
			t.Errorf("%s: %v, want a duplicate at %q", tc.body, err, tc.field)
		}
	}
	// Deep nesting is not a crash.
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	if err := checkDuplicateKeys(strings.NewReader(deep)); err != nil {
		t.Errorf("deep: %v", err)
	}
	deepObj := strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000)
	if err := checkDuplicateKeys(strings.NewReader(deepObj)); err != nil {
		t.Errorf("deep objects: %v", err)
	}
}

// FuzzCheckDuplicateKeys: never a panic, and a body without a repeated
// member name (folded) in any one object is never reported.
func FuzzCheckDuplicateKeys(f *testing.F) {
	for _, s := range []string{`{"enabled":false,"enabled":true}`, `{"a":{"b":[1,{"c":2}]}}`, `[{"a":1},{"a":1}]`, `{"\u0065":1,"E":2}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		err := checkDuplicateKeys(strings.NewReader(body))
		var dup *DuplicateKeyError
		if err != nil && !errors.As(err, &dup) {
			t.Fatalf("%q: an error that is not a DuplicateKeyError: %v", body, err)
		}
	})
}
