package chaos_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/internal/faultproxy"
	"github.com/recguard/recguard/internal/redistest"
	rs "github.com/recguard/recguard/store/redis"
)

// TestProxyFaults puts a TCP fault between some SDK instances and Redis
// while every instance writes opt-outs and opt-ins (WaitForAll) and answers
// decisions: latency, stall, drop, reset, blackhole. The cut-off instances
// must fail closed within lease + 0.5 s, nobody may answer personalized
// after an acknowledged opt-out, nothing acknowledged may be lost, and the
// instances must answer verified and correct within 2 s of the heal.
func TestProxyFaults(t *testing.T) {
	m := currentMode()
	m.parallel(t)
	srv := redistest.StartServer(t) // one Redis; each trial its own prefix
	tab := &table{head: []string{"fault", "seed", "cut off", "fault for", "fail closed after", "recovered after", "acked (opt-outs)", "lost", "personalized after opt-out"}}
	for _, kind := range []string{"latency", "stall", "drop", "reset", "blackhole"} {
		t.Run(kind, func(t *testing.T) {
			trials(t, m, 1, 4, func(t *testing.T, seed int64) { proxyTrial(t, m, srv, kind, seed, tab) })
		})
	}
	t.Log(tab)
}

func proxyTrial(t *testing.T, m mode, srv *redistest.Server, kind string, seed int64, tab *table) {
	r := rand.New(rand.NewPCG(uint64(seed), 1))
	n := 2
	if m.long {
		n = 2 + r.IntN(2)
	}
	// Which instances are cut off: one, or (one time in three) all.
	cut := []int{r.IntN(n)}
	if r.IntN(3) == 0 {
		cut = cut[:0]
		for i := 0; i < n; i++ {
			cut = append(cut, i)
		}
	}
	latency := time.Duration(0)
	mustFailClosed := true
	if kind == "latency" {
		// Either a latency the lease absorbs, or one it cannot (a round
		// trip longer than the lease).
		if r.IntN(2) == 0 {
			latency = m.lease / 10
			mustFailClosed = false
		} else {
			latency = m.lease * 3 / 4
		}
	}
	warm := jitter(r, 500*time.Millisecond, time.Second)
	dur := m.failClosedBound() + 300*time.Millisecond
	if m.long {
		dur += jitter(r, 0, 3*time.Second)
	}
	users := makeUsers("u", 48)

	prefix := redistest.Prefix(t, srv.Client(nil))
	insts := openInstances(t, n, instConfig{addrs: []string{srv.Addr}, prefix: prefix, proxied: true, lease: m.lease})
	var names []string
	for _, i := range cut {
		names = append(names, insts[i].name)
	}
	desc := kind
	if latency > 0 {
		desc = fmt.Sprintf("latency %v", latency)
	}
	t.Logf("%d instances; %s on %v at +%v for %v", n, desc, names, warm, dur)
	preload(t, insts, users)

	w := startWorkload(insts, users, seed, defaultWorkload())
	time.Sleep(warm)
	faultAt := time.Now()
	for _, i := range cut {
		p := insts[i].proxy
		switch kind {
		case "latency":
			p.SetLatency(latency)
		case "stall":
			p.Set(faultproxy.Stall)
		case "drop":
			p.Set(faultproxy.Drop)
		case "reset":
			p.Set(faultproxy.Reset)
		case "blackhole":
			p.Set(faultproxy.Blackhole)
		}
	}
	sleepUntil(faultAt.Add(dur))
	healAt := time.Now()
	for _, i := range cut {
		insts[i].proxy.Heal()
	}
	time.Sleep(recoverBound + 500*time.Millisecond)
	h := w.halt()

	// The truth, read past the proxies.
	rc := rs.NewClient(rs.ClientOptions{Addrs: []string{srv.Addr}})
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	truthStore, err := rs.New(ctx, rc, rs.Options{Prefix: prefix, Logger: quiet})
	if err != nil {
		t.Fatalf("opening the store for the truth: %v", err)
	}
	truth := readTruth(t, truthStore, users)
	vs, ls := reportHistory(t, h, truth, true)

	worstFC, worstRec := time.Duration(-1), time.Duration(0)
	for _, i := range cut {
		win := h.Window(insts[i].name, faultAt, healAt, nil)
		t.Logf("%s: %d answers during the fault (%d fail closed), %d after; fail closed after %s; recovered %s after the heal",
			insts[i].name, win.During, win.FailedClosed, win.After, ms(win.FailClosed), ms(win.Recover))
		if mustFailClosed {
			if win.FailClosed < 0 {
				t.Errorf("(c) violated: %s never failed closed during a %v %s", insts[i].name, dur, desc)
			} else if win.FailClosed > m.failClosedBound() {
				t.Errorf("(c) violated: %s gave a trusted answer %v after the fault started (bound %v)", insts[i].name, win.FailClosed, m.failClosedBound())
			}
		}
		if win.Recover < 0 || win.Recover > recoverBound {
			t.Errorf("(d) violated: %s recovered %s after the heal (bound %v)", insts[i].name, ms(win.Recover), recoverBound)
		}
		worstFC = max(worstFC, win.FailClosed)
		if win.Recover < 0 || worstRec < 0 {
			worstRec = -1
		} else {
			worstRec = max(worstRec, win.Recover)
		}
	}
	if d, wrong := converge(insts, users, truth, recoverBound); d < 0 {
		t.Errorf("(d) violated: %d answers still unverified or not the store's %v after the heal: %v", len(wrong), recoverBound, head(wrong, 5))
	}
	acked, ackedOff := h.Acked()
	t.Logf("%d ops (%d acknowledged, %d opt-outs), %d answers; errors: %s", len(h.Ops), acked, ackedOff, len(h.Answers), errSummary(h))
	tab.add(desc, fmt.Sprint(seed), fmt.Sprintf("%d of %d", len(cut), n), ms(dur), ms(worstFC), ms(worstRec),
		fmt.Sprintf("%d (%d)", acked, ackedOff), fmt.Sprint(LostOps(ls)), fmt.Sprint(len(vs)))
}

func head(xs []string, n int) string {
	if len(xs) > n {
		return strings.Join(xs[:n], ", ") + fmt.Sprintf(", ... (%d)", len(xs))
	}
	return strings.Join(xs, ", ")
}
