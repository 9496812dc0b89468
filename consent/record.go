package consent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/recguard/recguard/tags"
)

// Record is everything held about one user: consent state, tags and
// suppressions, the version (number of changes applied, equal to the last
// receipt's Seq) and the hash of the last receipt (the head of the chain).
type Record struct {
	UserID string `json:"user_id"`
	// Number is the user's dense number, assigned by the store atomically
	// with the user's first change and never changed or reused; indexes use
	// it as the user's position in their bitmaps. Zero until assigned.
	Number    uint32    `json:"number,omitempty"`
	Version   uint64    `json:"version"`
	State     State     `json:"state"`
	Tags      tags.Set  `json:"tags"`
	LastHash  string    `json:"last_hash,omitempty"`
	UpdatedAt time.Time `json:"updated_at,omitempty"`
	// Purged is the anchor the last purge of expired receipts left (see
	// Anchor); zero when none was purged.
	Purged Anchor `json:"purged,omitzero"`
	// HeadMAC is a MAC under the chain key over the user ID, Version,
	// LastHash and the digest of the record's content (ContentDigest), set
	// by every change: a record edited, rolled back to a made-up state or
	// forged by whoever can write the store but lacks the key does not
	// verify (VerifyChain).
	HeadMAC string `json:"head_mac,omitempty"`
}

// ContentDigest is the hex SHA-256 of the record's content: everything but
// Number (assigned by the store), Purged (set by purges, sealed on its
// own) and HeadMAC.
func (r Record) ContentDigest() string {
	c := r
	c.Number, c.Purged, c.HeadMAC = 0, Anchor{}, ""
	c.UpdatedAt = c.UpdatedAt.UTC()
	b, err := json.Marshal(c)
	if err != nil { // a Record always marshals
		panic(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// ComputeHeadMAC returns the HeadMAC r should carry under key.
func (r Record) ComputeHeadMAC(key ChainKey) string {
	return headMAC(key, r.UserID, r.Version, r.LastHash, r.ContentDigest())
}

func headMAC(key ChainKey, user string, version uint64, last, content string) string {
	return macHex(key, fmt.Sprintf("head\x00%s\x00%d\x00%s\x00%s", user, version, last, content))
}

// NewRecord returns the record of a user we know nothing about.
func NewRecord(userID string) Record { return Record{UserID: userID} }

// Apply is ApplyKeyed with no chain key (an unkeyed chain): for tests and
// tools. Stores seal with the deployment's key.
func (r Record) Apply(ch Change, set *Settings) (Record, *Receipt, error) {
	return r.ApplyKeyed(ch, set, nil)
}

// ApplyKeyed validates ch against r and returns the record after the change
// and the change's receipt, chained to r and sealed under key. A change that
// would leave the record as it is returns r and a nil receipt: nothing to
// write.
//
// ch must have passed ch.Validate(set) and carry a non-zero At. The error is
// a *FieldError wrapping ErrConsentRequired, ErrForbidden, ErrInvalidChange,
// ErrInferenceRefused or tags.ErrSuppressed. r is never modified.
func (r Record) ApplyKeyed(ch Change, set *Settings, key ChainKey) (Record, *Receipt, error) {
	if ch.UserID != r.UserID {
		return r, nil, fieldErr("user_id", ErrInvalidChange, "change for %q applied to record of %q", ch.UserID, r.UserID)
	}
	if err := validAt(ch.At); err != nil {
		return r, nil, err
	}
	at := ch.At.UTC().Round(0)
	byUser := ch.Actor == ActorUser || ch.Actor == ActorGuardian
	st := r.State
	ts := r.Tags
	if ch.Actor == ActorGuardian && !st.Minor && ch.Op != OpErase && !ch.restrictive() {
		return r, nil, fieldErr("actor", ErrForbidden, "a guardian acts only for a minor")
	}
	if st.Erased {
		if ch.Op == OpErase || ch.restrictive() {
			// Erasing twice, or narrowing what may be done with the
			// data of a tombstone, changes nothing, whoever asks.
			return r, nil, nil
		}
		if !byUser {
			return r, nil, fieldErr("user_id", ErrForbidden, "user was erased; only the user's own change brings them back")
		}
		st.Erased = false
	}
	rc := Receipt{UserID: r.UserID, At: at, Actor: ch.Actor, Surface: ch.Surface, Op: ch.Op, Reason: ch.Reason, Ref: ch.Ref}
	switch ch.Op {
	case OpSetPersonalization:
		rc.Purpose = PurposePersonalization
		rc.Old, rc.New = onOff(!st.PersonalizationOff), onOff(ch.Value)
		if !ch.Value && st.PersonalizationOff {
			if !declineAgain(st, KindPersonalization, at, set) {
				return r, nil, nil
			}
			rc.New = declinedAgain
		}
		st.PersonalizationOff = !ch.Value
		if !ch.Value {
			st = st.withRefusal(KindPersonalization, at)
		}
	case OpSetChannel:
		rc.Purpose, rc.Subject = PurposePush, ch.Channel
		was := st.ChannelRefused(ch.Channel)
		rc.Old, rc.New = refusedAllowed(was), refusedAllowed(ch.Value)
		if ch.Value && was {
			if !declineAgain(st, ChannelKind(ch.Channel), at, set) {
				return r, nil, nil
			}
			rc.New = declinedAgain
		}
		st = st.withChannel(ch.Channel, ch.Value)
		if ch.Value {
			st = st.withRefusal(ChannelKind(ch.Channel), at)
		}
	case OpSetSensitive:
		rc.Subject = string(ch.Category)
		old, had := st.SensitiveGrant(ch.Category)
		rc.Old = grantString(old, had)
		if ch.Value {
			if st.Minor && ch.Actor != ActorGuardian {
				return r, nil, fieldErr("actor", ErrConsentRequired, "a minor's sensitive consent must be given by the guardian")
			}
			g := Grant{Granted: true, Purpose: ch.Purpose, PolicyVersion: set.PolicyVersion(ch.Purpose), ByGuardian: ch.Actor == ActorGuardian, At: at}
			rc.Purpose = ch.Purpose
			if had && old.Granted && old.Purpose == g.Purpose && old.PolicyVersion == g.PolicyVersion && old.ByGuardian == g.ByGuardian {
				return r, nil, nil
			}
			st = st.withSensitive(SensitiveConsent{Category: ch.Category, Grant: g})
			rc.New = grantString(g, true)
		} else {
			if !had || !old.Granted {
				// Declining a consent never given (or already withdrawn)
				// is recorded, so the app does not ask again too soon.
				if !declineAgain(st, SensitiveKind(ch.Category), at, set) {
					return r, nil, nil
				}
				rc.Purpose, rc.New = old.Purpose, declinedAgain
				st = st.withRefusal(SensitiveKind(ch.Category), at)
				break
			}
			rc.Purpose = old.Purpose
			st = st.withSensitive(SensitiveConsent{Category: ch.Category, Grant: Grant{Purpose: old.Purpose, PolicyVersion: old.PolicyVersion, At: at}})
			st = st.withRefusal(SensitiveKind(ch.Category), at)
			// Withdrawal stops processing: tags of the category go too.
			removed := 0
			for _, e := range ts.Entries {
				if set.Taxonomy.Lookup(e.Tag).Sensitive == ch.Category {
					removed++
				}
			}
			if removed > 0 {
				kept := tags.Set{Suppressed: ts.Suppressed}
				for _, e := range ts.Entries {
					if set.Taxonomy.Lookup(e.Tag).Sensitive != ch.Category {
						kept.Entries = append(kept.Entries, e)
					}
				}
				ts = kept
			}
			rc.New = fmt.Sprintf("withdrawn (%d tags removed)", removed)
		}
	case OpSetMinor:
		rc.Old, rc.New = minorString(st.Minor), minorString(ch.Value)
		st.Minor = ch.Value
	case OpSetGuardian:
		rc.Purpose = PurposeGuardian
		had := st.Guardian != nil
		var old Grant
		if had {
			old = *st.Guardian
		}
		rc.Old = grantString(old, had)
		if ch.Value {
			g := Grant{Granted: true, Purpose: PurposeGuardian, PolicyVersion: set.PolicyVersion(PurposeGuardian), ByGuardian: true, At: at}
			if had && old.Granted && old.PolicyVersion == g.PolicyVersion {
				return r, nil, nil
			}
			st.Guardian = &g
			rc.New = grantString(g, true)
		} else {
			if !had || !old.Granted {
				if !st.Minor || !declineAgain(st, KindGuardian, at, set) {
					return r, nil, nil
				}
				rc.New = declinedAgain
				st = st.withRefusal(KindGuardian, at)
				break
			}
			st.Guardian = &Grant{Purpose: PurposeGuardian, PolicyVersion: old.PolicyVersion, ByGuardian: true, At: at}
			st = st.withRefusal(KindGuardian, at)
			rc.New = "withdrawn"
		}
	case OpDeclareTag, OpInferTag:
		rc.Purpose, rc.Subject = PurposePersonalization, string(ch.Tag)
		if !st.GuardianOK(set) {
			return r, nil, fieldErr("tag", ErrConsentRequired, "the user is a minor without guardian consent")
		}
		if c := set.Taxonomy.Lookup(ch.Tag).Sensitive; c != "" && !st.SensitiveHeld(c, set) {
			return r, nil, fieldErr("tag", ErrConsentRequired, "%s is %s data and needs its separate consent", ch.Tag, c)
		}
		src := tags.Declared
		if ch.Op == OpInferTag {
			src = tags.Inferred
		}
		old, had := ts.Has(ch.Tag)
		sup := ts.IsSuppressed(ch.Tag)
		rc.Old = tagString(old, had, sup)
		// Only the user's explicit re-declaration (RedeclareTag) lifts a
		// suppression: a plain declaration of a deleted tag is refused like
		// an inference, so no pipeline can pass one off as the user's.
		lift := ch.Op == OpDeclareTag && byUser && ch.Value
		next, err := ts.Add(ch.Tag, src, lift, at)
		if err != nil {
			return r, nil, wrapField("tag", tags.ErrSuppressed, err)
		}
		e, _ := next.Has(ch.Tag)
		if had && e.Source == old.Source {
			return r, nil, nil // already there from the same source
		}
		if ch.Op == OpInferTag && (st.Restricted || !set.AllowInferenceWhileOff && (st.PersonalizationOff || set.Suspended)) {
			why := "the user turned personalization off"
			switch {
			case st.Restricted:
				why = "the user restricted processing of their data"
			case set.Suspended:
				why = "the service is suspended"
			}
			return r, nil, fieldErr("tag", ErrInferenceRefused, "%s: no inferred tags are stored", why)
		}
		ts = next
		rc.New = tagString(e, true, false)
		if sup {
			rc.New += " (suppression lifted by the user's re-declaration)"
		}
	case OpDeleteTag:
		rc.Purpose, rc.Subject = PurposePersonalization, string(ch.Tag)
		old, had := ts.Has(ch.Tag)
		sup := ts.IsSuppressed(ch.Tag)
		if !had && sup {
			return r, nil, nil
		}
		rc.Old = tagString(old, had, sup)
		ts = ts.Delete(ch.Tag, at)
		rc.New = "deleted, suppressed"
	case OpRestrict:
		rc.Old, rc.New = restrictedString(st.Restricted), restrictedString(ch.Value)
		st.Restricted = ch.Value
	case OpCorrectTag:
		rc.Purpose, rc.Subject = PurposePersonalization, string(ch.Tag)
		old, had := ts.Has(ch.Tag)
		if !had {
			return r, nil, fieldErr("tag", ErrInvalidChange, "%s is not one of the user's tags", ch.Tag)
		}
		if !st.GuardianOK(set) {
			return r, nil, fieldErr("replacement", ErrConsentRequired, "the user is a minor without guardian consent")
		}
		if c := set.Taxonomy.Lookup(ch.Replacement).Sensitive; c != "" && !st.SensitiveHeld(c, set) {
			return r, nil, fieldErr("replacement", ErrConsentRequired, "%s is %s data and needs its separate consent", ch.Replacement, c)
		}
		// The wrong tag goes and stays gone (a pipeline may not bring it
		// back); the right one is the user's declaration.
		next, err := ts.Delete(ch.Tag, at).Add(ch.Replacement, tags.Declared, true, at)
		if err != nil {
			return r, nil, wrapField("replacement", tags.ErrSuppressed, err)
		}
		rc.Old = tagString(old, true, false)
		rc.New = "corrected to " + string(ch.Replacement) + " (declared)"
		ts = next
	case OpErase:
		rc.Old, rc.New = "active", "erased"
		st = State{Erased: true}
		// Suppressions go too: the tombstone refuses every pipeline write.
		ts = tags.Set{}
	default:
		return r, nil, fieldErr("op", ErrInvalidChange, "unknown operation %q", clip(string(ch.Op)))
	}
	if rc.Purpose != "" {
		rc.PolicyVersion = set.PolicyVersion(rc.Purpose)
	}
	if rc.Old == rc.New && ts.Equal(r.Tags) && !r.State.Erased {
		return r, nil, nil
	}
	next := Record{UserID: r.UserID, Number: r.Number, Version: r.Version + 1, State: st, Tags: ts, UpdatedAt: at, Purged: r.Purged}
	rc.Seq = next.Version
	rc.PrevHash = r.LastHash
	rc.Seal(key)
	next.LastHash = rc.Hash
	next.HeadMAC = next.ComputeHeadMAC(key)
	return next, &rc, nil
}

// declinedAgain is the New of a receipt that records a repeated "no".
const declinedAgain = "declined"

// declineAgain reports whether a "no" to kind k that changes nothing (the
// consent is already refused or was never given) is recorded: yes when no
// refusal of k is on record or the last one is at least the re-ask cooldown
// old (Art. 22(5): the cooldown restarts on every "no"), no within it (a
// retry of the same answer).
func declineAgain(st State, k Kind, at time.Time, set *Settings) bool {
	last, ok := st.LastRefusal(k)
	return !ok || !at.Before(last.Add(set.ReaskCooldown))
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

func refusedAllowed(refused bool) string {
	if refused {
		return "refused"
	}
	return "allowed"
}

func restrictedString(r bool) string {
	if r {
		return "restricted"
	}
	return "unrestricted"
}

func minorString(m bool) string {
	if m {
		return "minor"
	}
	return "adult"
}

func grantString(g Grant, had bool) string {
	switch {
	case !had:
		return "none"
	case !g.Granted:
		return "withdrawn"
	case g.ByGuardian:
		return fmt.Sprintf("granted by guardian for %s under policy v%d", g.Purpose, g.PolicyVersion)
	}
	return fmt.Sprintf("granted for %s under policy v%d", g.Purpose, g.PolicyVersion)
}

func tagString(e tags.Entry, had, suppressed bool) string {
	switch {
	case had:
		return string(e.Source)
	case suppressed:
		return "suppressed"
	}
	return "absent"
}
