// Package consent is the consent model of recguard, pure and free of I/O.
//
// It holds what a user has agreed to and refused (State), the typed
// operations that change it (Change), the tamper-evident record every change
// leaves (Receipt, chained by hash per user), the platform's settings
// (Settings: channels, taxonomy, policy versions, re-ask cooldown, receipt
// retention, the Art. 51 kill switch), and the rules that turn all of that
// into an answer for one request (Evaluate, which returns a Decision).
//
// Record.Apply is the single place where a change is validated against the
// current record and turned into a new record plus its receipt; every Store
// calls it, so the rules cannot drift between backends.
//
// consent imports only the tag model (package tags); nothing else of recguard.
package consent
