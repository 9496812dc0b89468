package consent_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/tags"
)

func ExampleEvaluate() {
	set := consent.DefaultSettings()
	var ts tags.Set
	ts, _ = ts.Add(tags.MustParse("interest:ski"), tags.Declared, true, time.Now())
	ts, _ = ts.Add(tags.MustParse("medical_health:diabetes"), tags.Inferred, false, time.Now())

	// A user we know nothing about is personalized, but sensitive tags need
	// their separate consent.
	d := consent.Evaluate(consent.State{}, ts, &set)
	fmt.Println(d.Personalized, d.Reason, d.Tags)

	// After the Art. 42 switch is turned off, nothing is personalized and a
	// targeted push is refused; an untargeted one may still go out.
	st := consent.State{PersonalizationOff: true, RefusedChannels: []string{"sms"}}
	d = consent.Evaluate(st, ts, &set)
	fmt.Println(d.Personalized, d.Reason, d.Tags)
	fmt.Println(d.CanPush("push", true))
	fmt.Println(d.CanPush("push", false))
	fmt.Println(d.CanPush("sms", false))
	// Output:
	// true personalized [interest:ski]
	// false personalization_off []
	// false personalization_off
	// true allowed
	// false channel_refused
}

func ExampleRecord_Apply() {
	set := consent.DefaultSettings()
	at := time.Date(2025, 1, 1, 8, 0, 0, 0, time.UTC)

	ch := consent.SetPersonalization("u42", false)
	ch.At = at
	if err := ch.Validate(&set); err != nil {
		panic(err)
	}
	r, rc, err := consent.NewRecord("u42").Apply(ch, &set)
	fmt.Println(err, r.Version, r.State.PersonalizationOff)
	fmt.Println(rc.Seq, rc.Op, rc.Actor, rc.Surface, rc.Old, "->", rc.New, rc.Purpose, rc.PolicyVersion)

	// The same change again changes nothing and leaves no receipt.
	_, rc, err = r.Apply(ch, &set)
	fmt.Println(rc == nil, err)

	// A tag the user deleted cannot be inferred back.
	del := consent.DeleteTag("u42", "interest:ski")
	del.At = at.Add(time.Minute)
	r, _, _ = r.Apply(del, &set)
	inf := consent.InferTag("u42", "interest:ski")
	inf.At = at.Add(2 * time.Minute)
	_, _, err = r.Apply(inf, &set)
	fmt.Println(errors.Is(err, tags.ErrSuppressed))
	// Output:
	// <nil> 1 true
	// 1 set_personalization user app_settings on -> off personalization 1
	// true <nil>
	// true
}

func ExampleShouldAsk() {
	set := consent.DefaultSettings() // 30-day re-ask cooldown
	refused := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	st := consent.State{
		PersonalizationOff: true,
		Refusals:           []consent.Refusal{{Kind: consent.KindPersonalization, At: refused}},
	}
	fmt.Println(consent.ShouldAsk(st, consent.KindPersonalization, &set, refused.AddDate(0, 0, 7)))
	fmt.Println(consent.ShouldAsk(st, consent.KindPersonalization, &set, refused.AddDate(0, 0, 30)))
	// Consent already in force is not asked for.
	fmt.Println(consent.ShouldAsk(consent.State{}, consent.KindPersonalization, &set, refused))
	// Output:
	// false
	// true
	// false
}

func ExampleVerifyChain() {
	set := consent.DefaultSettings()
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	key := consent.ChainKey("a deployment secret, not in the store")
	r := consent.NewRecord("u7")
	var receipts []consent.Receipt
	for i, ch := range []consent.Change{
		consent.RefuseChannel("u7", "sms"),
		consent.SetPersonalization("u7", false),
		consent.AllowChannel("u7", "sms"),
	} {
		ch.At = at.Add(time.Duration(i) * time.Hour)
		next, rc, err := r.ApplyKeyed(ch, &set, key)
		if err != nil {
			panic(err)
		}
		r, receipts = next, append(receipts, *rc)
	}
	head := consent.HeadOf(r, &set, at.Add(time.Hour))
	fmt.Println(consent.VerifyChain(receipts, head, key))
	fmt.Println(receipts[1].PrevHash == receipts[0].Hash)

	// Editing a receipt after the fact breaks the chain.
	edited := append([]consent.Receipt(nil), receipts...)
	edited[1].New = "on"
	err := consent.VerifyChain(edited, head, key)
	fmt.Println(errors.Is(err, consent.ErrBrokenChain))
	fmt.Println(err)

	// So does removing the newest receipt: the record's head names it.
	err = consent.VerifyChain(receipts[:2], head, key)
	fmt.Println(err)

	// Erasure redacts receipts; the chain still verifies.
	erase := consent.Erase("u7")
	erase.At = at.Add(3 * time.Hour)
	r, rc, err := r.ApplyKeyed(erase, &set, key)
	if err != nil {
		panic(err)
	}
	receipts = append(receipts, *rc)
	for i := range receipts {
		receipts[i] = receipts[i].Redact()
	}
	fmt.Println(consent.VerifyChain(receipts, consent.HeadOf(r, &set, at.Add(4*time.Hour)), key), receipts[0].Subject == "")
	// Output:
	// <nil>
	// true
	// true
	// consent: receipt chain broken: receipts: receipt 1 (seq 2): personal fields do not match their digest
	// consent: receipt chain broken: receipts: newest receipt is seq 2 but the record is at version 3: receipts were removed or the record replaced
	// <nil> true
}
