//go:build race

package chaos_test

// raceEnabled says the tests run with the race detector; the recguard binary
// the serve trials build then has it too (and reuses the cached packages).
const raceEnabled = true
