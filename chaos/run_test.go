package chaos_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	seedFlag   = flag.Int64("chaos.seed", 0, "replay one trial with this seed (also RECGUARD_CHAOS_SEED); 0 draws new seeds")
	longFlag   = flag.Bool("chaos.long", false, "run the long chaos suite (also RECGUARD_CHAOS=long)")
	trialsFlag = flag.Int("chaos.trials", 0, "trials per test case (0: the mode's default)")
)

// mode is the run's size: the short bounded run CI does, or the long one.
type mode struct {
	long bool
	// lease is the SDK's Config.Lease in every trial: 1 s in short runs
	// (shorter trials), the 2 s default in long runs.
	lease time.Duration
}

func currentMode() mode {
	if *longFlag || strings.EqualFold(os.Getenv("RECGUARD_CHAOS"), "long") {
		return mode{long: true, lease: 2 * time.Second}
	}
	return mode{lease: time.Second}
}

// parallel lets the short run's tests overlap (two at a time by default:
// -parallel is GOMAXPROCS), so that the suite stays short in CI; the long
// run keeps them apart, so that its figures are not one test's load on
// another.
func (m mode) parallel(t *testing.T) {
	if !m.long {
		t.Parallel()
	}
}

// failClosedBound is property (c)'s bound: lease + 0.5 s.
func (m mode) failClosedBound() time.Duration { return m.lease + 500*time.Millisecond }

// recoverBound is property (d)'s bound.
const recoverBound = 2 * time.Second

func (m mode) flagArg() string {
	if m.long {
		return " -chaos.long"
	}
	return ""
}

// replaySeed returns the seed to replay, or 0.
func replaySeed() int64 {
	if *seedFlag != 0 {
		return *seedFlag
	}
	if v := os.Getenv("RECGUARD_CHAOS_SEED"); v != "" {
		s, err := strconv.ParseInt(v, 10, 64)
		if err == nil {
			return s
		}
	}
	return 0
}

// trials runs the trial function once per seed: short or long trials
// (per the mode and -chaos.trials), or only the replayed seed. Each trial
// is a subtest named by its seed and logs the command that replays it.
func trials(t *testing.T, m mode, short, long int, run func(t *testing.T, seed int64)) {
	n := short
	if m.long {
		n = long
	}
	if *trialsFlag > 0 {
		n = *trialsFlag
	}
	var seeds []int64
	if s := replaySeed(); s != 0 {
		seeds = []int64{s}
	} else {
		r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5eed))
		for i := 0; i < n; i++ {
			seeds = append(seeds, r.Int64N(1<<40)+1)
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Logf("seed %d: replay with: go test ./chaos -run '^%s$' -v -chaos.seed=%d%s",
				seed, strings.ReplaceAll(t.Name(), "/seed="+strconv.FormatInt(seed, 10), ""), seed, m.flagArg())
			run(t, seed)
		})
	}
}

// sleepUntil sleeps until t.
func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// jitter returns a duration in [lo, hi) drawn from r.
func jitter(r *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(r.Int64N(int64(hi-lo)))
}

// cleanupBuild removes what the trials built (see serve_test.go).
var cleanupBuild = func() {}
