// Package enforce is the enforcement audit (issue 14): it replays the
// receipts of every user the ledger names (their consent timeline, at the
// moment of each entry) and the settings receipts (the suspension, the
// policy versions) against the ledger of exposures and pushes, and lists
// every entry that broke the user's consent, with its evidence.
//
// The rules, each with a propagation allowance after the change it
// breaks (Options.Allowance for a user's change, Options.SettingsAllowance
// for a settings change):
//
//   - a personalized exposure after the user turned personalization off;
//   - a push on a channel the user refused;
//   - a targeted push after the user turned personalization off;
//   - a personalized exposure or a push while the service was suspended
//     or the user had restricted processing;
//   - a personalized exposure or a targeted push to a minor without
//     current guardian consent;
//   - an exposure or a push chosen by a tag the user deleted, or by a
//     sensitive tag without a separate consent valid at that time;
//
// and, with no allowance: an exposure declared personalized under a
// decision ID whose decision was not, and a push sent although its own
// decision refused it for one of these reasons.
//
// Entries of users erased since name no one (the ledger's pseudonym link
// is erased with the user) and are counted, not checked.
package enforce
