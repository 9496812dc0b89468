package consent

import (
	"fmt"
	"sort"
	"time"

	"github.com/recguard/recguard/tags"
)

// DiffSettings lists every difference between old and next, one line each,
// in a fixed order (channels, taxonomy, policies, keep_on_bump, durations,
// inference, suspension), for settings receipts and for people. The
// version is not compared.
func DiffSettings(old, next *Settings) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	for _, d := range diffSets(old.Channels, next.Channels) {
		add("channels: %s", d)
	}
	for _, ns := range unionKeys(old.Taxonomy, next.Taxonomy) {
		a, hadA := old.Taxonomy[ns]
		b, hadB := next.Taxonomy[ns]
		switch {
		case !hadA:
			add("taxonomy %s: added (%s)", ns, describeNS(b))
		case !hadB:
			add("taxonomy %s: removed (was %s)", ns, describeNS(a))
		case a != b:
			add("taxonomy %s: %s -> %s", ns, describeNS(a), describeNS(b))
		}
	}
	for _, p := range unionKeys(old.Policies, next.Policies) {
		a, hadA := old.Policies[p]
		b, hadB := next.Policies[p]
		switch {
		case !hadA:
			add("policies %s: added at v%d", p, b)
		case !hadB:
			add("policies %s: removed (was v%d)", p, a)
		case a != b:
			add("policies %s: v%d -> v%d", p, a, b)
		}
	}
	for _, d := range diffSets(old.KeepOnBump, next.KeepOnBump) {
		add("keep_on_bump: %s", d)
	}
	if old.ReaskCooldown != next.ReaskCooldown {
		add("reask_cooldown: %v -> %v", old.ReaskCooldown, next.ReaskCooldown)
	}
	if a, b := old.RetentionOrDefault(), next.RetentionOrDefault(); a != b {
		add("retention: %v -> %v", a, b)
	}
	if old.AllowInferenceWhileOff != next.AllowInferenceWhileOff {
		add("allow_inference_while_off: %t -> %t", old.AllowInferenceWhileOff, next.AllowInferenceWhileOff)
	}
	if old.Suspended != next.Suspended {
		add("suspended: %t -> %t", old.Suspended, next.Suspended)
	}
	if old.SuspendReason != next.SuspendReason {
		add("suspend_reason: %q -> %q", old.SuspendReason, next.SuspendReason)
	}
	return out
}

// Weakens lists the differences from old to next that loosen a consent
// rule: a sensitive or prohibited namespace removed or made ordinary (or
// moved to another category), a policy removed, the re-ask cooldown
// shortened, inference allowed while personalization is off. An admin
// surface should make such a change only when asked explicitly.
func Weakens(old, next *Settings) []string {
	var out []string
	for ns, a := range old.Taxonomy {
		b, ok := next.Taxonomy[ns]
		switch {
		case a.Sensitive != "" && (!ok || b.Sensitive != a.Sensitive):
			out = append(out, fmt.Sprintf("taxonomy %s: no longer needs the separate consent for %s", ns, a.Sensitive))
		case a.Prohibited && (!ok || !b.Prohibited):
			out = append(out, fmt.Sprintf("taxonomy %s: no longer prohibited", ns))
		}
	}
	for p, v := range old.Policies {
		if _, ok := next.Policies[p]; !ok {
			out = append(out, fmt.Sprintf("policies %s: removed (was v%d)", p, v))
		}
	}
	for _, p := range next.KeepOnBump {
		if !contains(old.KeepOnBump, p) {
			out = append(out, fmt.Sprintf("keep_on_bump: +%s (policy bumps stop voiding its consents)", p))
		}
	}
	if next.ReaskCooldown < old.ReaskCooldown {
		out = append(out, fmt.Sprintf("reask_cooldown: shortened %v -> %v", old.ReaskCooldown, next.ReaskCooldown))
	}
	if next.AllowInferenceWhileOff && !old.AllowInferenceWhileOff {
		out = append(out, "allow_inference_while_off: false -> true")
	}
	sort.Strings(out)
	return out
}

// NewSettingsReceipt builds the receipt of a settings change from old to
// next: Op OpSetSettings, no user, Seq seq, chained to prev, Old and New the
// settings' Summary, Diff every difference (DiffSettings). Both stores build
// settings receipts with it.
func NewSettingsReceipt(old, next *Settings, seq uint64, prev string, actor Actor, surface Surface, at time.Time, key ChainKey) Receipt {
	rc := Receipt{Seq: seq, At: at.UTC().Round(0), Actor: actor, Surface: surface, Op: OpSetSettings,
		Old: old.Summary(), New: next.Summary(), Diff: DiffSettings(old, next), PrevHash: prev}
	rc.Seal(key)
	return rc
}

func describeNS(n tags.Namespace) string {
	d := "ordinary"
	switch {
	case n.Prohibited:
		d = "prohibited"
	case n.Sensitive != "":
		d = "sensitive: " + string(n.Sensitive)
	}
	if n.Category != "" {
		d += ", category " + n.Category
	}
	return d
}

func diffSets(a, b []string) []string {
	var out []string
	for _, x := range b {
		if !contains(a, x) {
			out = append(out, "+"+x)
		}
	}
	for _, x := range a {
		if !contains(b, x) {
			out = append(out, "-"+x)
		}
	}
	sort.Strings(out)
	return out
}

func unionKeys[V any](a, b map[string]V) []string {
	seen := make(map[string]bool, len(a)+len(b))
	for k := range a {
		seen[k] = true
	}
	for k := range b {
		seen[k] = true
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
