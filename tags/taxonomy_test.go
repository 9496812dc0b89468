package tags_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/recguard/recguard/tags"
)

func TestCategories(t *testing.T) {
	want := []tags.Category{"biometrics", "religion", "specific_identity", "medical_health", "financial_account", "whereabouts"}
	got := tags.Categories()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Categories() = %v, want %v", got, want)
	}
	// The result is a fresh slice each time: changing it changes nothing.
	got[0] = "changed"
	if again := tags.Categories(); !reflect.DeepEqual(again, want) {
		t.Errorf("Categories() after modifying a previous result = %v, want %v", again, want)
	}
	for _, c := range want {
		if !c.Valid() {
			t.Errorf("Category(%q).Valid() = false, want true", c)
		}
		got, err := tags.ParseCategory(string(c))
		if err != nil || got != c {
			t.Errorf("ParseCategory(%q) = %q, %v; want %q, nil", c, got, err, c)
		}
	}
}

func TestParseCategoryInvalid(t *testing.T) {
	for _, s := range []string{"", "Religion", "religion ", "health", "sensitive", strings.Repeat("x", 200)} {
		if tags.Category(s).Valid() {
			t.Errorf("Category(%q).Valid() = true, want false", s)
		}
		got, err := tags.ParseCategory(s)
		if !errors.Is(err, tags.ErrInvalidCategory) {
			t.Errorf("ParseCategory(%q) error = %v, want ErrInvalidCategory", s, err)
		}
		if got != "" {
			t.Errorf("ParseCategory(%q) = %q with error, want empty", s, got)
		}
	}
}

func TestTaxonomyLookup(t *testing.T) {
	x := tags.Taxonomy{
		"religion": {Category: "sensitive", Sensitive: tags.Religion},
		"ethnic":   {Prohibited: true},
		"interest": {Category: "interests"},
	}
	cases := []struct {
		tag  string
		want tags.Namespace
	}{
		{"religion:buddhism", tags.Namespace{Category: "sensitive", Sensitive: tags.Religion}},
		{"ethnic:x", tags.Namespace{Prohibited: true}},
		{"interest:ski", tags.Namespace{Category: "interests"}},
		{"region:sh", tags.Namespace{}},
		{"religions:x", tags.Namespace{}},
	}
	for _, c := range cases {
		if got := x.Lookup(tags.MustParse(c.tag)); got != c.want {
			t.Errorf("Lookup(%q) = %+v, want %+v", c.tag, got, c.want)
		}
	}
	var empty tags.Taxonomy
	if got := empty.Lookup("religion:x"); got != (tags.Namespace{}) {
		t.Errorf("nil taxonomy Lookup = %+v, want zero", got)
	}
}

func TestTaxonomyValidate(t *testing.T) {
	cases := []struct {
		name      string
		x         tags.Taxonomy
		wantErr   bool
		wantInMsg string
	}{
		{"nil", nil, false, ""},
		{"empty", tags.Taxonomy{}, false, ""},
		{"ordinary, sensitive and prohibited", tags.Taxonomy{
			"interest":       {Category: "interests"},
			"medical_health": {Sensitive: tags.MedicalHealth},
			"ethnic":         {Prohibited: true},
		}, false, ""},
		{"category of 64 bytes", tags.Taxonomy{"a": {Category: strings.Repeat("c", 64)}}, false, ""},
		{"category of 65 bytes", tags.Taxonomy{"a": {Category: strings.Repeat("c", 65)}}, true, "category longer than 64 bytes"},
		{"empty namespace", tags.Taxonomy{"": {}}, true, "namespace must be 1 to 32 bytes"},
		{"uppercase namespace", tags.Taxonomy{"Interest": {}}, true, "must start with a lowercase letter"},
		{"namespace with colon", tags.Taxonomy{"a:b": {}}, true, "not in [a-z0-9_]"},
		{"namespace too long", tags.Taxonomy{strings.Repeat("a", tags.MaxNamespaceLen+1): {}}, true, "namespace must be 1 to 32 bytes"},
		{"unknown sensitive category", tags.Taxonomy{"health": {Sensitive: "health"}}, true, `unknown sensitive category "health"`},
		// Names are checked in sorted order, so the first bad one is reported.
		{"first bad name reported", tags.Taxonomy{"b": {Sensitive: "x"}, "a": {Sensitive: "y"}}, true, `namespace "a"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.x.Validate()
			if !c.wantErr {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tags.ErrInvalidTaxonomy) {
				t.Fatalf("Validate() = %v, want ErrInvalidTaxonomy", err)
			}
			if !strings.Contains(err.Error(), c.wantInMsg) {
				t.Errorf("Validate() = %q, want it to contain %q", err, c.wantInMsg)
			}
		})
	}
}

func TestTaxonomyClone(t *testing.T) {
	var nilX tags.Taxonomy
	if c := nilX.Clone(); c != nil {
		t.Errorf("nil.Clone() = %v, want nil", c)
	}
	empty := tags.Taxonomy{}
	if c := empty.Clone(); c == nil || len(c) != 0 {
		t.Errorf("empty.Clone() = %#v, want a non-nil empty map", c)
	}
	x := tags.Taxonomy{"religion": {Sensitive: tags.Religion}, "ethnic": {Prohibited: true}}
	c := x.Clone()
	if !reflect.DeepEqual(c, x) {
		t.Fatalf("Clone() = %v, want %v", c, x)
	}
	c["religion"] = tags.Namespace{}
	c["new"] = tags.Namespace{Prohibited: true}
	delete(c, "ethnic")
	want := tags.Taxonomy{"religion": {Sensitive: tags.Religion}, "ethnic": {Prohibited: true}}
	if !reflect.DeepEqual(x, want) {
		t.Errorf("changing the clone changed the original: %v, want %v", x, want)
	}
}
