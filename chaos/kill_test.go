package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/store"
	rs "github.com/recguard/recguard/store/redis"
)

// TestRedisKillAOF SIGKILLs a Redis that fsyncs every write (appendonly
// yes, appendfsync always) during a stream of opt-outs and opt-ins from two
// SDK instances, and restarts it on the same directory after a seeded
// downtime. Nothing acknowledged may be lost, nobody may answer
// personalized after an acknowledged opt-out, the instances fail closed
// within lease + 0.5 s of the kill (when it lasts that long) and answer
// verified again within 2 s of the restart.
func TestRedisKillAOF(t *testing.T) {
	m := currentMode()
	m.parallel(t)
	tab := &table{head: []string{"seed", "down for", "fail closed after", "recovered after", "acked (opt-outs)", "lost", "personalized after opt-out"}}
	trials(t, m, 1, 5, func(t *testing.T, seed int64) {
		r := rand.New(rand.NewPCG(uint64(seed), 2))
		srv := redistest.StartAOFServer(t)
		warm := jitter(r, 500*time.Millisecond, time.Second)
		down := m.failClosedBound() + 300*time.Millisecond
		if m.long {
			down = jitter(r, 200*time.Millisecond, m.lease+3*time.Second)
		}
		users := makeUsers("k", 48)
		prefix := "rgchaos"
		insts := openInstances(t, 2, instConfig{addrs: []string{srv.Addr}, prefix: prefix, lease: m.lease})
		preload(t, insts, users)
		t.Logf("SIGKILL at +%v, down for %v", warm, down)

		w := startWorkload(insts, users, seed, defaultWorkload())
		time.Sleep(warm)
		killAt := time.Now()
		srv.Stop() // SIGKILL
		sleepUntil(killAt.Add(down))
		upAt := time.Now() // the heal: from here on Redis may answer
		srv.Start()        // same port, same directory: replays the AOF
		time.Sleep(recoverBound + 500*time.Millisecond)
		h := w.halt()

		truth := readTruth(t, insts[0].st, users)
		vs, ls := reportHistory(t, h, truth, true)
		worstFC, worstRec := checkWindows(t, m, h, insts, killAt, upAt, down > m.failClosedBound()+200*time.Millisecond, nil)
		if d, wrong := converge(insts, users, truth, recoverBound); d < 0 {
			t.Errorf("(d) violated: %d answers still unverified or not the store's %v after the restart: %v", len(wrong), recoverBound, head(wrong, 5))
		}
		acked, ackedOff := h.Acked()
		t.Logf("%d ops (%d acknowledged, %d opt-outs), %d answers; errors: %s", len(h.Ops), acked, ackedOff, len(h.Answers), errSummary(h))
		tab.add(fmt.Sprint(seed), ms(down), ms(worstFC), ms(worstRec), fmt.Sprintf("%d (%d)", acked, ackedOff), fmt.Sprint(LostOps(ls)), fmt.Sprint(len(vs)))
	})
	t.Log(tab)
}

// checkWindows checks (c) (when mustFailClosed) and (d) for every instance
// in insts over answers about users in only (nil: all), and returns the
// worst figures.
func checkWindows(t *testing.T, m mode, h *History, insts []*instance, faultAt, healAt time.Time, mustFailClosed bool, only map[string]bool) (worstFC, worstRec time.Duration) {
	t.Helper()
	worstFC = -1
	for _, in := range insts {
		win := h.Window(in.name, faultAt, healAt, only)
		t.Logf("%s: %d answers during the fault (%d fail closed), %d after; fail closed after %s; recovered %s after the heal",
			in.name, win.During, win.FailedClosed, win.After, ms(win.FailClosed), ms(win.Recover))
		if mustFailClosed {
			if win.FailClosed < 0 {
				t.Errorf("(c) violated: %s never failed closed during the fault", in.name)
			} else if win.FailClosed > m.failClosedBound() {
				t.Errorf("(c) violated: %s gave a trusted answer %v after the fault started (bound %v)", in.name, win.FailClosed, m.failClosedBound())
			}
		}
		if win.Recover < 0 || win.Recover > recoverBound {
			t.Errorf("(d) violated: %s recovered %s after the heal (bound %v)", in.name, ms(win.Recover), recoverBound)
		}
		worstFC = max(worstFC, win.FailClosed)
		if win.Recover < 0 || worstRec < 0 {
			worstRec = -1
		} else {
			worstRec = max(worstRec, win.Recover)
		}
	}
	return worstFC, worstRec
}

// TestRedisRestartEmpty SIGKILLs a Redis without persistence under two
// running SDK instances and restarts it empty: the acknowledged opt-outs are
// gone with the data, and recguard must notice. From lease + 0.5 s after the
// kill no instance may give anything but fail-closed answers, they must say
// data_loss within 2 s of the restart and keep saying it, nobody may answer
// personalized after an acknowledged opt-out, writes must be refused, and a
// store opened on the empty keyspace without Init must be refused with
// store.ErrNotInitialized.
func TestRedisRestartEmpty(t *testing.T) {
	m := currentMode()
	m.parallel(t)
	tab := &table{head: []string{"seed", "down for", "fail closed after", "data_loss after restart", "trusted answers after the loss", "acked writes after restart", "personalized after opt-out"}}
	trials(t, m, 1, 3, func(t *testing.T, seed int64) {
		r := rand.New(rand.NewPCG(uint64(seed), 3))
		srv := redistest.StartServer(t, "--appendonly", "no")
		warm := jitter(r, 500*time.Millisecond, time.Second)
		down := jitter(r, 50*time.Millisecond, 300*time.Millisecond)
		if m.long {
			down = jitter(r, 50*time.Millisecond, m.lease+time.Second)
		}
		users := makeUsers("e", 48)
		prefix := "rgchaos"
		insts := openInstances(t, 2, instConfig{addrs: []string{srv.Addr}, prefix: prefix, lease: m.lease})
		preload(t, insts, users)
		t.Logf("SIGKILL at +%v, restarted empty after %v", warm, down)

		w := startWorkload(insts, users, seed, defaultWorkload())
		time.Sleep(warm)
		killAt := time.Now()
		srv.Stop()
		sleepUntil(killAt.Add(down))
		upAt := time.Now()
		srv.Start() // no AOF, no RDB: empty
		time.Sleep(recoverBound + time.Second)
		h := w.halt()

		vs, _ := reportHistory(t, h, nil, false)
		if len(vs) > 0 {
			t.Errorf("(a) violated: %d personalized answers after acknowledged opt-outs", len(vs))
		}
		// Every answer from lease + 0.5 s after the kill on fails closed,
		// and from 2 s after the restart on says data_loss.
		closedFrom := killAt.Add(m.failClosedBound())
		lossFrom := upAt.Add(recoverBound)
		trusted, notLoss := 0, 0
		var firstLoss time.Time
		for _, a := range h.Answers {
			if a.Reason == consent.ReasonDataLoss && a.Start.After(upAt) && firstLoss.IsZero() {
				firstLoss = a.Start
			}
			if a.Start.After(closedFrom) && !a.failClosed() {
				if trusted < 5 {
					t.Errorf("%s answered %s: personalized=%v reason %v, %v after the kill; want fail closed", a.Inst, a.User, a.Personalized, a.Reason, a.Start.Sub(killAt))
				}
				trusted++
			}
			if a.Start.After(lossFrom) && a.Reason != consent.ReasonDataLoss {
				if notLoss < 5 {
					t.Errorf("%s answered %s with reason %v %v after the restart; want data_loss", a.Inst, a.User, a.Reason, a.Start.Sub(upAt))
				}
				notLoss++
			}
		}
		if trusted > 0 || notLoss > 0 {
			t.Errorf("after the data loss: %d trusted answers (from lease + 0.5 s after the kill), %d answers without reason data_loss (from 2 s after the restart)", trusted, notLoss)
		}
		ackedAfter := 0
		for _, o := range h.Ops {
			if o.Acked && o.Invoke.After(upAt) {
				ackedAfter++
			}
		}
		if ackedAfter > 0 {
			t.Errorf("%d writes acknowledged on the emptied keyspace; want them refused", ackedAfter)
		}
		win := h.Window(insts[0].name, killAt, upAt, nil)
		// A new store on the empty keyspace, without Init, must refuse.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rc := rs.NewClient(rs.ClientOptions{Addrs: []string{srv.Addr}})
		defer rc.Close()
		if _, err := rs.New(ctx, rc, rs.Options{Prefix: prefix, Logger: quiet}); !errors.Is(err, store.ErrNotInitialized) && !errors.Is(err, store.ErrDataLoss) {
			t.Errorf("rs.New on the emptied keyspace without Init: err = %v, want store.ErrNotInitialized", err)
		}
		lossAfter := "never"
		if !firstLoss.IsZero() {
			lossAfter = ms(firstLoss.Sub(upAt))
		}
		t.Logf("%d ops, %d answers; errors: %s", len(h.Ops), len(h.Answers), errSummary(h))
		tab.add(fmt.Sprint(seed), ms(down), ms(win.FailClosed), lossAfter, fmt.Sprint(trusted), fmt.Sprint(ackedAfter), fmt.Sprint(len(vs)))
	})
	t.Log(tab)
}
