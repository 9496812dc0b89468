package server

import (
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/recguard/recguard/consent"
)

// TestSettingsMembers: the members a PUT must carry (and the server
// writes) are exactly the JSON members of consent.Settings, so a field
// added to the settings cannot be left out of a complete document; the
// server writes every one of them even when consent.Settings omits it.
func TestSettingsMembers(t *testing.T) {
	t.Parallel()
	var fields []string
	rt := reflect.TypeOf(consent.Settings{})
	for i := 0; i < rt.NumField(); i++ {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields = append(fields, name)
		}
	}
	members := slices.Clone(settingsMembers)
	sort.Strings(fields)
	sort.Strings(members)
	if !slices.Equal(fields, members) {
		t.Fatalf("consent.Settings has members %v, settingsMembers %v", fields, members)
	}
	for _, set := range []consent.Settings{{}, consent.DefaultSettings(), {Version: 3, Suspended: true, SuspendReason: "order 1",
		KeepOnBump: []string{"push"}, AllowInferenceWhileOff: true}} {
		b, err := json.Marshal(fullSettings(set))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if len(m) != len(settingsMembers) {
			t.Errorf("%s: %d members, want %d", b, len(m), len(settingsMembers))
		}
		var back consent.Settings
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if len(consent.DiffSettings(&set, &back)) != 0 || back.Version != set.Version {
			t.Errorf("round trip of %+v: %+v", set, back)
		}
	}
}

// TestMergePatchRFC7396: mergePatch gives the results of RFC 7396's
// Appendix A.
func TestMergePatchRFC7396(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`["a","b"]`, `["c","d"]`, `["c","d"]`},
		{`{"a":"b"}`, `["c"]`, `["c"]`},
		{`{"a":"foo"}`, `null`, `null`},
		{`{"a":"foo"}`, `"bar"`, `"bar"`},
		{`{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
	} {
		var target, patch, want any
		for _, x := range []struct {
			s string
			v *any
		}{{tc.target, &target}, {tc.patch, &patch}, {tc.want, &want}} {
			if err := json.Unmarshal([]byte(x.s), x.v); err != nil {
				t.Fatal(err)
			}
		}
		if got := mergePatch(target, patch); !reflect.DeepEqual(got, want) {
			t.Errorf("merge %s into %s: %v, want %s", tc.patch, tc.target, got, tc.want)
		}
	}
}
