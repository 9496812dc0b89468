// Package tags is the tag model of recguard: user tags built on personal
// characteristics, the taxonomy that says which namespaces are sensitive or
// prohibited, and the suppression records that make a deleted tag stay
// deleted (Network Data Security Management Regulations, Art. 42).
//
// A tag is written namespace:value, for example "interest:ski". Tags are
// either declared by the user or inferred by the platform. When a user
// deletes a tag, a suppression record is left behind: adding the same tag
// again as inferred is refused with ErrSuppressed, and only the user's own
// re-declaration lifts it.
//
// The package is pure: it imports nothing else of recguard, does no I/O and
// keeps no global state.
package tags
