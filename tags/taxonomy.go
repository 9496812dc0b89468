package tags

import (
	"fmt"
	"sort"
)

// Category is a category of sensitive personal information that needs the
// user's separate consent before it is processed (Art. 22).
type Category string

// The sensitive categories the regulations name.
const (
	Biometrics       Category = "biometrics"
	Religion         Category = "religion"
	SpecificIdentity Category = "specific_identity"
	MedicalHealth    Category = "medical_health"
	FinancialAccount Category = "financial_account"
	Whereabouts      Category = "whereabouts"
)

// Categories lists every sensitive category in a fixed order.
func Categories() []Category {
	return []Category{Biometrics, Religion, SpecificIdentity, MedicalHealth, FinancialAccount, Whereabouts}
}

// Valid reports whether c is one of the known sensitive categories.
func (c Category) Valid() bool {
	switch c {
	case Biometrics, Religion, SpecificIdentity, MedicalHealth, FinancialAccount, Whereabouts:
		return true
	}
	return false
}

// ParseCategory validates s as a sensitive category; the error wraps
// ErrInvalidCategory.
func ParseCategory(s string) (Category, error) {
	c := Category(s)
	if !c.Valid() {
		return "", fmt.Errorf("%w %q: want one of %v", ErrInvalidCategory, clip(s), Categories())
	}
	return c, nil
}

// Namespace describes one tag namespace in the taxonomy.
type Namespace struct {
	// Category is a free-form grouping for people (e.g. "interests"); it has
	// no effect on decisions. Empty is fine.
	Category string `json:"category,omitempty"`
	// Sensitive names the sensitive category whose separate consent is
	// needed before a tag of this namespace may be stored or used. Empty
	// means the namespace is not sensitive.
	Sensitive Category `json:"sensitive,omitempty"`
	// Prohibited namespaces may never be stored or used.
	Prohibited bool `json:"prohibited,omitempty"`
}

// Taxonomy maps a namespace to its description. Namespaces not in the
// taxonomy are ordinary: not sensitive, not prohibited. The zero value (nil)
// is an empty taxonomy. A Taxonomy is read-only once in use.
type Taxonomy map[string]Namespace

// Lookup returns the description of t's namespace (the zero Namespace when the
// taxonomy does not list it).
func (x Taxonomy) Lookup(t Tag) Namespace { return x[t.Namespace()] }

// Validate checks every namespace name and sensitive category; the error wraps
// ErrInvalidTaxonomy.
func (x Taxonomy) Validate() error {
	names := make([]string, 0, len(x))
	for ns := range x {
		names = append(names, ns)
	}
	sort.Strings(names)
	for _, ns := range names {
		if err := validNamespace(ns); err != nil {
			return fmt.Errorf("%w: namespace %q: %v", ErrInvalidTaxonomy, clip(ns), err)
		}
		d := x[ns]
		if d.Sensitive != "" && !d.Sensitive.Valid() {
			return fmt.Errorf("%w: namespace %q: unknown sensitive category %q", ErrInvalidTaxonomy, ns, clip(string(d.Sensitive)))
		}
		if len(d.Category) > 64 {
			return fmt.Errorf("%w: namespace %q: category longer than 64 bytes", ErrInvalidTaxonomy, ns)
		}
	}
	return nil
}

// Clone returns a copy of x that shares nothing with it.
func (x Taxonomy) Clone() Taxonomy {
	if x == nil {
		return nil
	}
	c := make(Taxonomy, len(x))
	for k, v := range x {
		c[k] = v
	}
	return c
}
