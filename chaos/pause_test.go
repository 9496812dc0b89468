//go:build unix

package chaos_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/recguard/recguard/internal/redistest"
)

// TestRedisPause stops the Redis process (SIGSTOP) under two SDK instances
// writing and answering, as a hung machine would: connections stay open and
// nothing answers. After a seeded time it continues (SIGCONT). Checks (a)
// to (d) as for the other faults.
func TestRedisPause(t *testing.T) {
	m := currentMode()
	m.parallel(t)
	tab := &table{head: []string{"seed", "paused for", "fail closed after", "recovered after", "acked (opt-outs)", "lost", "personalized after opt-out"}}
	trials(t, m, 1, 4, func(t *testing.T, seed int64) {
		r := rand.New(rand.NewPCG(uint64(seed), 6))
		srv := redistest.StartAOFServer(t)
		warm := jitter(r, 500*time.Millisecond, time.Second)
		paused := m.failClosedBound() + 300*time.Millisecond
		if m.long {
			paused += jitter(r, 0, 3*time.Second)
		}
		users := makeUsers("p", 48)
		insts := openInstances(t, 2, instConfig{addrs: []string{srv.Addr}, prefix: "rgchaos", lease: m.lease})
		preload(t, insts, users)
		t.Logf("SIGSTOP at +%v for %v", warm, paused)

		w := startWorkload(insts, users, seed, defaultWorkload())
		time.Sleep(warm)
		pausedAt := time.Now()
		srv.Pause()
		sleepUntil(pausedAt.Add(paused))
		resumedAt := time.Now()
		srv.Resume()
		time.Sleep(recoverBound + 500*time.Millisecond)
		h := w.halt()

		truth := readTruth(t, insts[0].st, users)
		vs, ls := reportHistory(t, h, truth, true)
		worstFC, worstRec := checkWindows(t, m, h, insts, pausedAt, resumedAt, true, nil)
		if d, wrong := converge(insts, users, truth, recoverBound); d < 0 {
			t.Errorf("(d) violated: %d answers still unverified or not the store's %v after SIGCONT: %v", len(wrong), recoverBound, head(wrong, 5))
		}
		acked, ackedOff := h.Acked()
		t.Logf("%d ops (%d acknowledged, %d opt-outs), %d answers; errors: %s", len(h.Ops), acked, ackedOff, len(h.Answers), errSummary(h))
		tab.add(fmt.Sprint(seed), ms(paused), ms(worstFC), ms(worstRec), fmt.Sprintf("%d (%d)", acked, ackedOff), fmt.Sprint(LostOps(ls)), fmt.Sprint(len(vs)))
	})
	t.Log(tab)
}
