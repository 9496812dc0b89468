//go:build race

package bench

// raceEnabled says the tests run with the race detector: timings then
// measure the detector, and the timing checks skip.
const raceEnabled = true
