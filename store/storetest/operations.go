package storetest

import (
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// opStep is one effective change of the round trip and the receipt fields
// it must produce.
type opStep struct {
	name     string
	ch       consent.Change
	op       consent.Op
	subject  string
	old, new string
	policy   int
}

func testOperations(t *testing.T, newStore newStoreFunc) {
	parallel(t, "every operation round-trips", newStore, testRoundTrip)
	parallel(t, "zero At is set by the store", newStore, func(t *testing.T, s store.Store) {
		const u = "clock-user"
		before := time.Now()
		a := mustApplyEffective(t, s, consent.SetPersonalization(u, false))
		if a.Receipt.At.IsZero() {
			t.Fatalf("receipt At is zero, want the store's clock")
		}
		if !a.Record.UpdatedAt.Equal(a.Receipt.At) {
			t.Errorf("record UpdatedAt = %v, want the receipt's At %v", a.Record.UpdatedAt, a.Receipt.At)
		}
		if d := a.Receipt.At.Sub(before); d < -48*time.Hour || d > 48*time.Hour {
			t.Errorf("receipt At = %v, more than a day away from the real clock %v", a.Receipt.At, before)
		}
		checkEqual(t, "Get after Apply", mustGet(t, s, u), a.Record)
		checkEqual(t, "Receipts after Apply", mustReceipts(t, s, u), []consent.Receipt{*a.Receipt})
	})
}

// testRoundTrip applies every operation in turn to one user and checks the
// record, the receipt, the receipts list and the changelog after each.
func testRoundTrip(t *testing.T, s store.Store) {
	const u = "ops-user"
	const (
		pAdmin = consent.ActorAdmin
		sAdmin = consent.SurfaceAdminConsole
	)
	steps := []opStep{
		{"personalization off", consent.SetPersonalization(u, false),
			consent.OpSetPersonalization, "", "on", "off", 1},
		{"personalization on via web", consent.SetPersonalization(u, true).By(consent.ActorUser, consent.SurfaceWeb),
			consent.OpSetPersonalization, "", "off", "on", 1},
		{"refuse channel", consent.RefuseChannel(u, "sms"),
			consent.OpSetChannel, "sms", "allowed", "refused", 1},
		{"allow channel", consent.AllowChannel(u, "sms").By(consent.ActorUser, consent.SurfaceWeb),
			consent.OpSetChannel, "sms", "refused", "allowed", 1},
		{"admin refuses channel with a reason", consent.RefuseChannel(u, "email").By(pAdmin, sAdmin).Because("support ticket 42"),
			consent.OpSetChannel, "email", "allowed", "refused", 1},
		{"grant sensitive", consent.GrantSensitive(u, tags.Religion, consent.PurposePersonalization),
			consent.OpSetSensitive, "religion", "none", "granted for personalization under policy v1", 1},
		{"declare sensitive tag", consent.DeclareTag(u, tagBuddhism),
			consent.OpDeclareTag, string(tagBuddhism), "absent", "declared", 1},
		{"infer tag", consent.InferTag(u, tagSki),
			consent.OpInferTag, string(tagSki), "absent", "inferred", 1},
		{"declare inferred tag", consent.DeclareTag(u, tagSki),
			consent.OpDeclareTag, string(tagSki), "inferred", "declared", 1},
		{"admin infers tag", consent.InferTag(u, tagGolf).By(pAdmin, sAdmin),
			consent.OpInferTag, string(tagGolf), "absent", "inferred", 1},
		{"delete tag", consent.DeleteTag(u, tagGolf),
			consent.OpDeleteTag, string(tagGolf), "inferred", "deleted, suppressed", 1},
		{"withdraw sensitive", consent.WithdrawSensitive(u, tags.Religion),
			consent.OpSetSensitive, "religion", "granted for personalization under policy v1", "withdrawn (1 tags removed)", 1},
		{"set minor", consent.SetMinor(u, true),
			consent.OpSetMinor, "", "adult", "minor", 0},
		{"guardian consents", consent.SetGuardian(u, true),
			consent.OpSetGuardian, "", "none", "granted by guardian for guardian under policy v1", 1},
		{"guardian declares tag", consent.DeclareTag(u, tagChess).By(consent.ActorGuardian, consent.SurfaceAppSettings),
			consent.OpDeclareTag, string(tagChess), "absent", "declared", 1},
		{"admin withdraws guardian consent", consent.SetGuardian(u, false).By(pAdmin, sAdmin),
			consent.OpSetGuardian, "", "granted by guardian for guardian under policy v1", "withdrawn", 1},
		{"the guardian sets adult", consent.SetMinor(u, false).By(consent.ActorGuardian, consent.SurfaceAppSettings),
			consent.OpSetMinor, "", "minor", "adult", 0},
		{"erase", consent.Erase(u),
			consent.OpErase, "", "active", "erased", 0},
		{"user comes back", consent.SetPersonalization(u, true),
			consent.OpSetPersonalization, "", "on", "on", 1},
	}

	set := mustSettings(t, s)
	shard := store.ShardOf(u, s.Shards())
	t0 := base()
	prev := consent.NewRecord(u)
	var receipts []consent.Receipt
	for i, st := range steps {
		ch := at(st.ch, t0.Add(time.Duration(i)*time.Second))
		ok := t.Run(st.name, func(t *testing.T) {
			if err := ch.Validate(&set); err != nil {
				t.Fatalf("suite bug: step does not validate: %v", err)
			}
			wantRec, wantRc, err := prev.ApplyKeyed(ch, &set, ChainKey)
			if err != nil || wantRc == nil {
				t.Fatalf("suite bug: the model does not apply the step: receipt %v, error %v", wantRc, err)
			}
			tail := mustTail(t, s, shard)

			a := mustApplyEffective(t, s, ch)
			rc := *a.Receipt
			if a.Shard != shard {
				t.Errorf("Applied.Shard = %d, want ShardOf = %d", a.Shard, shard)
			}
			if a.Pos.IsZero() {
				t.Errorf("Applied.Pos is zero for an effective change")
			}
			if got, want := a.Record.Version, prev.Version+1; got != want {
				t.Errorf("record Version = %d, want %d", got, want)
			}
			if rc.Op != st.op || rc.Subject != st.subject || rc.Old != st.old || rc.New != st.new || rc.PolicyVersion != st.policy {
				t.Errorf("receipt op/subject/old/new/policy = %s/%q/%q/%q/v%d, want %s/%q/%q/%q/v%d",
					rc.Op, rc.Subject, rc.Old, rc.New, rc.PolicyVersion, st.op, st.subject, st.old, st.new, st.policy)
			}
			if rc.Actor != ch.Actor || rc.Surface != ch.Surface || rc.Reason != ch.Reason {
				t.Errorf("receipt actor/surface/reason = %s/%s/%q, want %s/%s/%q", rc.Actor, rc.Surface, rc.Reason, ch.Actor, ch.Surface, ch.Reason)
			}
			if rc.UserID != u || rc.Seq != a.Record.Version {
				t.Errorf("receipt user/seq = %q/%d, want %q/%d (the record version)", rc.UserID, rc.Seq, u, a.Record.Version)
			}
			if !rc.At.Equal(ch.At) {
				t.Errorf("receipt At = %v, want the change's At %v", rc.At, ch.At)
			}
			if rc.PrevHash != prev.LastHash || a.Record.LastHash != rc.Hash {
				t.Errorf("receipt PrevHash = %q and record LastHash = %q, want %q and the receipt's hash %q",
					rc.PrevHash, a.Record.LastHash, prev.LastHash, rc.Hash)
			}
			if prev.Version == 0 {
				// The store assigns the user's Number with the first
				// change (see the Store contract); the model cannot
				// know it, and keeps it from then on.
				wantRec.Number = a.Record.Number
			}
			// The salt is random: take the store's and seal again, so
			// the rest must match the model exactly, hash included.
			wantRc.Salt = rc.Salt
			wantRc.Seal(ChainKey)
			wantRec.LastHash = wantRc.Hash
			wantRec.HeadMAC = wantRec.ComputeHeadMAC(ChainKey)
			checkEqual(t, "Applied.Record (vs the model's Record.Apply)", a.Record, wantRec)
			checkEqual(t, "Applied.Receipt (vs the model's Record.Apply)", rc, *wantRc)
			checkEqual(t, "Get after Apply", mustGet(t, s, u), a.Record)

			rs := mustReceipts(t, s, u)
			wantRs := append(append([]consent.Receipt(nil), receipts...), rc)
			if a.Record.State.Erased {
				for i := range wantRs {
					wantRs[i] = wantRs[i].Redact()
				}
			}
			checkEqual(t, "Receipts after Apply", rs, wantRs)
			mustVerifyUser(t, s, u, time.Now())

			evs := mustRead(t, s, shard, tail, 10, 0)
			if len(evs) != 1 {
				t.Fatalf("ReadChangelog(shard %d) after the tail before Apply: got %d events, want 1", shard, len(evs))
			}
			checkEvent(t, evs[0], a)
			if got := mustTail(t, s, shard); got != a.Pos {
				t.Errorf("Tail(%d) = %q, want Applied.Pos %q", shard, got, a.Pos)
			}

			checkExport(t, s, u)

			prev = a.Record
			receipts = rs
		})
		if !ok {
			return
		}
	}
	rec := mustGet(t, s, u)
	// Erasure dropped the suppressions with everything else.
	if rec.State.Erased || len(rec.Tags.Entries) != 0 || rec.Tags.IsSuppressed(tagGolf) {
		t.Errorf("final record %s: want not erased, no tags, no suppression left from before the erasure", show(rec))
	}
}

// checkEvent checks that ev is the changelog entry of the applied change a.
func checkEvent(tb testing.TB, ev store.Event, a store.Applied) {
	tb.Helper()
	if ev.Log != a.Shard {
		tb.Errorf("event Log = %d, want shard %d", ev.Log, a.Shard)
	}
	if ev.Pos != a.Pos {
		tb.Errorf("event Pos = %q, want Applied.Pos %q", ev.Pos, a.Pos)
	}
	if ev.Settings != nil {
		tb.Errorf("event in a shard log has Settings %s, want nil", show(ev.Settings))
	}
	if ev.Record == nil {
		tb.Errorf("event Record is nil, want the record after the change")
	} else {
		checkEqual(tb, "event Record", *ev.Record, a.Record)
	}
	if a.Receipt != nil {
		want := *a.Receipt
		if a.Record.State.Erased {
			// An erasure's own receipt is kept redacted: its key is gone.
			want = want.Redact()
		}
		checkEqual(tb, "event Receipt", ev.Receipt, want)
	}
}
