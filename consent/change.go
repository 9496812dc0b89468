package consent

import (
	"fmt"
	"time"

	"github.com/recguard/recguard/tags"
)

// Op is the kind of a Change.
type Op string

// The operations a Change can carry. The meaning of Change.Value for each is
// given in brackets.
const (
	// OpSetPersonalization turns personalized recommendation on or off
	// [Value: true = on].
	OpSetPersonalization Op = "set_personalization"
	// OpSetChannel refuses or allows pushes on Channel [Value: true = refused].
	OpSetChannel Op = "set_channel"
	// OpSetSensitive grants or withdraws the separate consent for Category
	// for Purpose [Value: true = granted].
	OpSetSensitive Op = "set_sensitive"
	// OpSetMinor marks the user as under 14 or not [Value: true = minor].
	OpSetMinor Op = "set_minor"
	// OpSetGuardian records the guardian's consent for a minor
	// [Value: true = granted].
	OpSetGuardian Op = "set_guardian"
	// OpDeclareTag adds Tag as declared by the user [Value: true = lift the
	// suppression a deletion left: the user re-declares the tag on purpose].
	OpDeclareTag Op = "declare_tag"
	// OpInferTag adds Tag as inferred by the platform; refused with
	// tags.ErrSuppressed when the user deleted it.
	OpInferTag Op = "infer_tag"
	// OpDeleteTag deletes Tag and leaves a suppression record.
	OpDeleteTag Op = "delete_tag"
	// OpRestrict restricts processing of the user's data to storage
	// (Art. 23) or lifts the restriction [Value: true = restricted].
	OpRestrict Op = "restrict"
	// OpCorrectTag replaces the user's Tag with Replacement, declared by
	// the user, in one change (Art. 23 correction); the wrong tag is
	// suppressed.
	OpCorrectTag Op = "correct_tag"
	// OpErase erases the user's personal data: the record becomes a
	// tombstone (no tags, no suppressions, no consent), receipts keep no
	// personal field (Receipt.Redact) and stay for their retention.
	OpErase Op = "erase"
	// OpSetSettings is the operation of a settings receipt (see
	// store.Store.SetSettings); it is never the Op of a Change.
	OpSetSettings Op = "set_settings"
)

// Ops lists every operation.
func Ops() []Op {
	return []Op{OpSetPersonalization, OpSetChannel, OpSetSensitive, OpSetMinor, OpSetGuardian,
		OpDeclareTag, OpInferTag, OpDeleteTag, OpRestrict, OpCorrectTag, OpErase}
}

// Actor says who made a change.
type Actor string

// The actors.
const (
	ActorUser     Actor = "user"     // the user themself
	ActorGuardian Actor = "guardian" // a minor's guardian
	ActorAdmin    Actor = "admin"    // a person at the platform (product team, support)
	ActorSystem   Actor = "system"   // an automated process (inference pipeline, retention)
)

// Valid reports whether a is a known actor.
func (a Actor) Valid() bool {
	switch a {
	case ActorUser, ActorGuardian, ActorAdmin, ActorSystem:
		return true
	}
	return false
}

// Surface says through which surface a change was made: app_settings, web,
// api, admin_console, support, pipeline, ... Any name with the channel-name
// syntax is accepted.
type Surface string

// Common surfaces.
const (
	SurfaceAppSettings  Surface = "app_settings"
	SurfaceWeb          Surface = "web"
	SurfaceAPI          Surface = "api"
	SurfaceAdminConsole Surface = "admin_console"
	SurfacePipeline     Surface = "pipeline"
)

// Change is one typed operation on one user's record. Build it with the
// constructors (SetPersonalization, RefuseChannel, ...) and By.
type Change struct {
	UserID string `json:"user_id"`
	Op     Op     `json:"op"`
	// Value is the boolean argument of the operation; see Op.
	Value    bool          `json:"value,omitempty"`
	Channel  string        `json:"channel,omitempty"`
	Category tags.Category `json:"category,omitempty"`
	Purpose  string        `json:"purpose,omitempty"`
	Tag      tags.Tag      `json:"tag,omitempty"`
	// Replacement is the right tag of an OpCorrectTag.
	Replacement tags.Tag `json:"replacement,omitempty"`
	Actor       Actor    `json:"actor"`
	Surface     Surface  `json:"surface"`
	Reason      string   `json:"reason,omitempty"`
	// Ref is a reference to the evidence behind the change, kept in its
	// receipt: for a guardian's change, the guardian's verified identity or
	// consent record (an ID in the app's own systems, never a name).
	Ref string `json:"ref,omitempty"`
	// At is when the change was made; stores set it from their clock when
	// zero.
	At time.Time `json:"at"`
}

// SetPersonalization turns personalized recommendation on or off for user,
// made by the user through the app's settings.
func SetPersonalization(user string, on bool) Change {
	return Change{UserID: user, Op: OpSetPersonalization, Value: on, Actor: ActorUser, Surface: SurfaceAppSettings}
}

// RefuseChannel refuses pushes on channel, made by the user.
func RefuseChannel(user, channel string) Change {
	return Change{UserID: user, Op: OpSetChannel, Channel: channel, Value: true, Actor: ActorUser, Surface: SurfaceAppSettings}
}

// AllowChannel allows pushes on channel again, made by the user.
func AllowChannel(user, channel string) Change {
	return Change{UserID: user, Op: OpSetChannel, Channel: channel, Actor: ActorUser, Surface: SurfaceAppSettings}
}

// GrantSensitive grants the separate consent for category c for purpose,
// made by the user.
func GrantSensitive(user string, c tags.Category, purpose string) Change {
	return Change{UserID: user, Op: OpSetSensitive, Category: c, Purpose: purpose, Value: true, Actor: ActorUser, Surface: SurfaceAppSettings}
}

// WithdrawSensitive withdraws the consent for category c, made by the user.
// Tags in the category's namespaces are removed with it.
func WithdrawSensitive(user string, c tags.Category) Change {
	return Change{UserID: user, Op: OpSetSensitive, Category: c, Actor: ActorUser, Surface: SurfaceAppSettings}
}

// SetMinor marks user as under 14 (or not), made by the system. Only the
// user or the guardian may make a minor an adult: use By to say who.
func SetMinor(user string, minor bool) Change {
	return Change{UserID: user, Op: OpSetMinor, Value: minor, Actor: ActorSystem, Surface: SurfaceAPI}
}

// GuardianConsent records a guardian's consent for a minor with a reference
// to the guardian's verified identity or consent record (kept in the
// receipt).
func GuardianConsent(user, ref string) Change {
	c := SetGuardian(user, true)
	c.Ref = ref
	return c
}

// SetGuardian records (or withdraws) a guardian's consent for a minor, made
// by the guardian.
func SetGuardian(user string, granted bool) Change {
	return Change{UserID: user, Op: OpSetGuardian, Value: granted, Actor: ActorGuardian, Surface: SurfaceAppSettings}
}

// DeclareTag adds t as declared by the user.
func DeclareTag(user string, t tags.Tag) Change {
	return Change{UserID: user, Op: OpDeclareTag, Tag: t, Actor: ActorUser, Surface: SurfaceAppSettings}
}

// RedeclareTag adds t as declared by the user, lifting the suppression the
// user's earlier deletion left: the only change that brings a deleted tag
// back. The receipt says the suppression was lifted.
func RedeclareTag(user string, t tags.Tag) Change {
	c := DeclareTag(user, t)
	c.Value = true
	return c
}

// InferTag adds t as inferred by the platform's pipeline.
func InferTag(user string, t tags.Tag) Change {
	return Change{UserID: user, Op: OpInferTag, Tag: t, Actor: ActorSystem, Surface: SurfacePipeline}
}

// DeleteTag deletes t and suppresses it, made by the user.
func DeleteTag(user string, t tags.Tag) Change {
	return Change{UserID: user, Op: OpDeleteTag, Tag: t, Actor: ActorUser, Surface: SurfaceAppSettings}
}

// Restrict restricts processing of the user's data to storage (Art. 23),
// at the user's request; Unrestrict lifts it.
func Restrict(user string) Change {
	return Change{UserID: user, Op: OpRestrict, Value: true, Actor: ActorUser, Surface: SurfaceAppSettings}
}

// Unrestrict lifts the user's restriction of processing, made by the user.
func Unrestrict(user string) Change {
	return Change{UserID: user, Op: OpRestrict, Actor: ActorUser, Surface: SurfaceAppSettings}
}

// CorrectTag replaces the user's tag wrong with right, declared by the user
// (Art. 23 correction): one change, one receipt.
func CorrectTag(user string, wrong, right tags.Tag) Change {
	return Change{UserID: user, Op: OpCorrectTag, Tag: wrong, Replacement: right, Actor: ActorUser, Surface: SurfaceAppSettings}
}

// Erase erases the user's personal data, at the user's request.
func Erase(user string) Change {
	return Change{UserID: user, Op: OpErase, Actor: ActorUser, Surface: SurfaceAppSettings}
}

// By returns a copy of c made by actor through surface.
func (c Change) By(a Actor, s Surface) Change {
	c.Actor, c.Surface = a, s
	return c
}

// Because returns a copy of c with a free-text reason.
func (c Change) Because(reason string) Change {
	c.Reason = reason
	return c
}

// Restrictive reports whether the change can only narrow what the platform
// may do with the user's data (an opt-out, a channel refusal, a withdrawn
// consent, a tag deletion, an erasure). Any actor may make one, and stores
// accept one even when the settings cannot be re-read (it is valid under
// any settings that know its channel).
func (c Change) Restrictive() bool { return c.restrictive() }

func (c Change) restrictive() bool {
	switch c.Op {
	case OpSetPersonalization, OpSetSensitive, OpSetGuardian:
		return !c.Value
	case OpSetChannel, OpSetMinor, OpRestrict:
		return c.Value
	case OpDeleteTag, OpErase:
		return true
	}
	return false
}

// Validate checks everything about c that does not depend on the user's
// current record: IDs, tag and channel syntax, that the channel exists, that
// the fields fit the operation, that the actor may make it. Stores call it
// before any I/O. The error is a *FieldError wrapping a sentinel of this
// package or of package tags.
func (c *Change) Validate(set *Settings) error {
	if err := ValidUserID(c.UserID); err != nil {
		return err
	}
	if !c.Actor.Valid() {
		return fieldErr("actor", ErrInvalidChange, "unknown actor %q", clip(string(c.Actor)))
	}
	if err := ident(string(c.Surface), MaxChannelLen); err != nil {
		return fieldErr("surface", ErrInvalidChange, "%q: %v", clip(string(c.Surface)), err)
	}
	if len(c.Reason) > MaxReasonLen {
		return fieldErr("reason", ErrInvalidChange, "longer than %d bytes", MaxReasonLen)
	}
	if c.Ref != "" {
		if err := ValidUserID(c.Ref); err != nil {
			return fieldErr("ref", ErrInvalidChange, "a reference is 1 to %d bytes of [A-Za-z0-9_.@+=-]", MaxUserIDLen)
		}
	}
	if err := validAt(c.At); err != nil {
		return err
	}
	// Each op names the fields it uses; any other field must be empty.
	var usesChannel, usesCategory, usesPurpose, usesTag, usesReplacement bool
	switch c.Op {
	case OpSetPersonalization, OpSetMinor, OpErase, OpRestrict:
	case OpCorrectTag:
		usesTag, usesReplacement = true, true
		for _, f := range []struct {
			name string
			t    tags.Tag
		}{{"tag", c.Tag}, {"replacement", c.Replacement}} {
			t, err := tags.Parse(string(f.t))
			if err == nil && t != f.t {
				err = fmt.Errorf("%w %q: not in canonical form %q (make tags with tags.Parse)", tags.ErrInvalidTag, clip(string(f.t)), t)
			}
			if err != nil {
				return wrapField(f.name, tags.ErrInvalidTag, err)
			}
		}
		if c.Tag == c.Replacement {
			return fieldErr("replacement", ErrInvalidChange, "the replacement is the tag itself")
		}
		if c.Actor != ActorUser && c.Actor != ActorGuardian {
			return fieldErr("actor", ErrForbidden, "only the user or guardian corrects tags, not %s", c.Actor)
		}
		if set.Taxonomy.Lookup(c.Replacement).Prohibited {
			return &FieldError{Field: "replacement", Detail: fmt.Sprintf("namespace %q", c.Replacement.Namespace()), Err: tags.ErrProhibited}
		}
	case OpSetGuardian:
		if c.Value && c.Actor != ActorGuardian {
			return fieldErr("actor", ErrForbidden, "only the guardian can give guardian consent, not %s", c.Actor)
		}
	case OpSetChannel:
		usesChannel = true
		if err := ValidChannelName(c.Channel); err != nil {
			return err
		}
		if !set.HasChannel(c.Channel) {
			return fieldErr("channel", ErrUnknownChannel, "%q is not one of %v", c.Channel, set.Channels)
		}
	case OpSetSensitive:
		usesCategory = true
		if !c.Category.Valid() {
			return fieldErr("category", tags.ErrInvalidCategory, "%q: want one of %v", clip(string(c.Category)), tags.Categories())
		}
		if c.Value {
			usesPurpose = true
			if err := validPurpose(c.Purpose); err != nil {
				return err
			}
			// A purpose without a policy version could never be revoked by
			// a policy change (Art. 22), so it must be one the settings list.
			if _, ok := set.Policies[c.Purpose]; !ok {
				return fieldErr("purpose", ErrInvalidChange, "%q has no policy version in settings (have %v)", c.Purpose, sortedPolicies(set.Policies))
			}
		}
	case OpDeclareTag, OpInferTag, OpDeleteTag:
		usesTag = true
		t, err := tags.Parse(string(c.Tag))
		if err == nil && t != c.Tag {
			err = fmt.Errorf("%w %q: not in canonical form %q (make tags with tags.Parse)", tags.ErrInvalidTag, clip(string(c.Tag)), t)
		}
		if err != nil {
			return wrapField("tag", tags.ErrInvalidTag, err)
		}
		if c.Op == OpDeclareTag && c.Actor != ActorUser && c.Actor != ActorGuardian {
			return fieldErr("actor", ErrForbidden, "only the user or guardian declares tags, not %s", c.Actor)
		}
		if c.Op == OpInferTag && c.Actor != ActorSystem && c.Actor != ActorAdmin {
			return fieldErr("actor", ErrForbidden, "tags are inferred by the system or an admin, not %s", c.Actor)
		}
		if c.Op != OpDeleteTag && set.Taxonomy.Lookup(c.Tag).Prohibited {
			return &FieldError{Field: "tag", Detail: fmt.Sprintf("namespace %q", c.Tag.Namespace()), Err: tags.ErrProhibited}
		}
	default:
		return fieldErr("op", ErrInvalidChange, "unknown operation %q", clip(string(c.Op)))
	}
	if !usesChannel && c.Channel != "" {
		return fieldErr("channel", ErrInvalidChange, "%s takes no channel", c.Op)
	}
	if !usesCategory && c.Category != "" {
		return fieldErr("category", ErrInvalidChange, "%s takes no category", c.Op)
	}
	if !usesPurpose && c.Purpose != "" {
		return fieldErr("purpose", ErrInvalidChange, "%s takes no purpose", c.Op)
	}
	if !usesTag && c.Tag != "" {
		return fieldErr("tag", ErrInvalidChange, "%s takes no tag", c.Op)
	}
	if !usesReplacement && c.Replacement != "" {
		return fieldErr("replacement", ErrInvalidChange, "%s takes no replacement", c.Op)
	}
	// Widening what may be done with the user's data is the user's (or a
	// minor's guardian's) own choice; anyone may narrow it. So an admin or
	// the system may mark a minor, never make a minor an adult.
	if !c.restrictive() && c.Op != OpDeclareTag && c.Op != OpInferTag && c.Op != OpCorrectTag &&
		c.Actor != ActorUser && c.Actor != ActorGuardian {
		return fieldErr("actor", ErrForbidden, "%s (%t) widens processing and must come from the user or guardian, not %s", c.Op, c.Value, c.Actor)
	}
	return nil
}

// validAt checks that t can be written into a receipt: encoding/json (and so
// Receipt.Seal) only encodes years 0 to 9999, and an offset such as -23:59 can
// push a decoded time into year 10000 in UTC.
func validAt(t time.Time) error {
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return fieldErr("at", ErrInvalidChange, "year %d (UTC) outside 0 to 9999", y)
	}
	return nil
}
