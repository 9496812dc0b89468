//go:build race

package main

// raceEnabled says the tests run with the race detector; the recguard binary
// they build then has it too, so a data race in the server fails its exit.
const raceEnabled = true
