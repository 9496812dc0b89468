package sdk

import "errors"

// Errors of the SDK. Invalid input surfaces the model's errors
// (consent.ErrInvalidUserID, consent.ErrUnknownChannel, ...); store failures
// wrap the store's (store.ErrUnavailable, ...).
var (
	// ErrClosed reports use of a closed Client.
	ErrClosed = errors.New("sdk: client closed")
	// ErrNotPropagated reports that a change was recorded but not every
	// live instance confirmed applying it within Config.PropagationTimeout.
	// The change itself stands.
	ErrNotPropagated = errors.New("sdk: change recorded but not confirmed by every live instance")
	// ErrInvalidConfig reports a Config that does not validate.
	ErrInvalidConfig = errors.New("sdk: invalid config")
	// ErrNoPresence reports Config.WaitForAll on a store without the
	// Presence ability.
	ErrNoPresence = errors.New("sdk: the store cannot track instances (no store.Presence)")
)
