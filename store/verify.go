package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/recguard/recguard/consent"
)

// Compliance verification (Art. 27 audits): Verify walks every user of a
// store and checks what the store holds against what it must hold: each
// user's receipt chain against the record's head and purge anchor
// (consent.VerifyChain) under the deployment's chain key, receipts kept
// past their retention, receipts of erased users that still hold personal
// content, and tags the record's consent state does not allow. The report
// names users by ID and findings by kind; it never holds personal content
// (no tag, category, purpose, reason or value), only sequence numbers and
// counts.

// FindingKind names one kind of finding of Verify and VerifyUser.
type FindingKind string

// The kinds of findings. The first group are broken receipt chains: a
// user's chain is broken with exactly one of them, the first fault found
// walking the chain as consent.VerifyChain does.
const (
	// FindingEdited: a receipt's content, digest or hash does not match
	// (an edited or forged receipt, or receipts sealed under another chain
	// key), or the links between receipts do not (reordered, repeated,
	// replaced, another user's).
	FindingEdited FindingKind = "edited"
	// FindingTruncatedNewest: receipts were removed at the newest end:
	// the newest kept is older than the record's version.
	FindingTruncatedNewest FindingKind = "truncated_newest"
	// FindingTruncatedOldest: receipts were removed at the oldest end
	// with no purge anchor that accounts for them.
	FindingTruncatedOldest FindingKind = "truncated_oldest"
	// FindingGap: receipts were removed in the middle of the chain.
	FindingGap FindingKind = "gap"
	// FindingAnchorBeforeRetention: a purge anchor says receipts were
	// removed before their retention ended.
	FindingAnchorBeforeRetention FindingKind = "anchor_before_retention"
	// FindingForgedAnchor: the purge anchor is not sealed under the chain
	// key.
	FindingForgedAnchor FindingKind = "forged_anchor"
	// FindingForgedHead: the record's head (version and last hash) is not
	// sealed under the chain key (consent.Record.HeadMAC): the record was
	// forged or edited by someone without the key.
	FindingForgedHead FindingKind = "forged_head"
	// FindingHeadMismatch: the newest receipt is not the record's head
	// (same version, another hash; or receipts newer than the record): the
	// record was replaced or rolled back.
	FindingHeadMismatch FindingKind = "head_mismatch"
	// FindingBroken: consent.VerifyChain refused the chain for a reason
	// none of the kinds above names.
	FindingBroken FindingKind = "broken"

	// FindingUnreadable: the user's record or receipts are missing or
	// cannot be decoded (ErrCorrupt); nothing else was checked for them.
	FindingUnreadable FindingKind = "unreadable"
	// FindingNotPurged: receipts past the retention (and the purge grace)
	// that a purge would have deleted are still kept.
	FindingNotPurged FindingKind = "not_purged"
	// FindingUnredacted: receipts of a change made up to the user's
	// erasure still hold personal content (Art. 24).
	FindingUnredacted FindingKind = "unredacted_after_erasure"

	// FindingSensitiveWithoutConsent: tags of a sensitive category are
	// stored without that category's separate consent in force
	// (consent.State.SensitiveHeld).
	FindingSensitiveWithoutConsent FindingKind = "sensitive_tag_without_consent"
	// FindingTagsOnErased: an erased record holds tags or suppressions.
	FindingTagsOnErased FindingKind = "tags_on_erased_record"
	// FindingSuppressedPresent: tags that are suppressed (deleted by the
	// user) are present too.
	FindingSuppressedPresent FindingKind = "suppressed_tag_present"
	// FindingMinorWithoutGuardian: a minor without guardian consent in
	// force has tags.
	FindingMinorWithoutGuardian FindingKind = "minor_tags_without_guardian"
	// FindingProhibitedTag: tags of a namespace the settings prohibit are
	// stored.
	FindingProhibitedTag FindingKind = "prohibited_tag"

	// FindingSettingsChain: the settings receipts do not link up, or the
	// newest is not the current settings' (no user).
	FindingSettingsChain FindingKind = "settings_chain_broken"
)

// chainKinds are the kinds of broken chains, tagKinds those of tags the
// consent state does not allow, findingKinds every kind, in the order
// reports list them.
var (
	chainKinds = []FindingKind{
		FindingEdited, FindingTruncatedNewest, FindingTruncatedOldest, FindingGap,
		FindingAnchorBeforeRetention, FindingForgedAnchor, FindingForgedHead, FindingHeadMismatch, FindingBroken,
	}
	tagKinds = []FindingKind{
		FindingSensitiveWithoutConsent, FindingTagsOnErased, FindingSuppressedPresent,
		FindingMinorWithoutGuardian, FindingProhibitedTag,
	}
	findingKinds = slices.Concat(chainKinds,
		[]FindingKind{FindingUnreadable, FindingNotPurged, FindingUnredacted},
		tagKinds,
		[]FindingKind{FindingSettingsChain})
)

// FindingKinds returns every kind of finding, in the order reports list
// them.
func FindingKinds() []FindingKind { return slices.Clone(findingKinds) }

// ChainKinds returns the kinds of broken receipt chains.
func ChainKinds() []FindingKind { return slices.Clone(chainKinds) }

// TagKinds returns the kinds of tags a record's consent state does not
// allow.
func TagKinds() []FindingKind { return slices.Clone(tagKinds) }

// Chain reports whether k is a kind of broken receipt chain.
func (k FindingKind) Chain() bool { return slices.Contains(chainKinds, k) }

// Tag reports whether k is a kind of tag the consent state does not allow.
func (k FindingKind) Tag() bool { return slices.Contains(tagKinds, k) }

func (k FindingKind) rank() int {
	if i := slices.Index(findingKinds, k); i >= 0 {
		return i
	}
	return len(findingKinds)
}

// Finding is one problem Verify found: the user (empty for the settings),
// the kind, and where (sequence numbers, counts). Detail never holds
// personal content.
type Finding struct {
	UserID string      `json:"user,omitempty"`
	Kind   FindingKind `json:"kind"`
	Detail string      `json:"detail"`

	order uint64 // the user's number (0: the settings): the report's order
}

// Defaults of VerifyOptions.
const (
	// DefaultVerifyBatch is how many users one ListUsers/GetMany call
	// covers.
	DefaultVerifyBatch = 256
	// DefaultMaxFindings is how many findings a report lists.
	DefaultMaxFindings = 100
	// DefaultPurgeGrace is how long after its retention ended a receipt
	// may still be kept before Verify counts it as not purged: purges run
	// periodically (recguard serve: hourly).
	DefaultPurgeGrace = 24 * time.Hour
)

// VerifyOptions tune Verify and VerifyUser. The zero value is ready to use.
type VerifyOptions struct {
	// Workers is how many users' batches are checked at once. Zero means
	// runtime.GOMAXPROCS(0).
	Workers int
	// BatchSize is how many users one ListUsers / GetMany call covers.
	// Zero means DefaultVerifyBatch.
	BatchSize int
	// Now is the time of the check: retention is judged at it. Zero means
	// time.Now() when the check starts.
	Now time.Time
	// PurgeGrace is how long past their retention receipts may be kept
	// before they count as not purged. Zero means DefaultPurgeGrace;
	// negative means none.
	PurgeGrace time.Duration
	// MaxFindings bounds the findings listed in the report (all are
	// counted). Zero means DefaultMaxFindings; negative lists none.
	MaxFindings int
	// Progress, when set, is called with the users checked so far and
	// the users the store holds: once with done 0 before the first user,
	// then as batches finish, and once at the end. Calls are serialized and
	// done never decreases; total grows when users are added meanwhile.
	Progress func(done, total int64)
}

func (o VerifyOptions) withDefaults() VerifyOptions {
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultVerifyBatch
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.PurgeGrace == 0 {
		o.PurgeGrace = DefaultPurgeGrace
	} else if o.PurgeGrace < 0 {
		o.PurgeGrace = 0
	}
	if o.MaxFindings == 0 {
		o.MaxFindings = DefaultMaxFindings
	} else if o.MaxFindings < 0 {
		o.MaxFindings = 0
	}
	return o
}

// Count is a number of receipts and of the users they belong to.
type Count struct {
	Receipts int64 `json:"receipts"`
	Users    int64 `json:"users"`
}

// TagViolations counts the records with tags their consent state does not
// allow: Users in all, ByKind per kind (a user counts once per kind).
type TagViolations struct {
	Users  int64                 `json:"users"`
	ByKind map[FindingKind]int64 `json:"by_kind"`
}

// SettingsCheck is the verification of the settings receipts.
type SettingsCheck struct {
	// Receipts is how many settings receipts are kept.
	Receipts int `json:"receipts"`
	// ChainOK is true when they link up and the newest is the current
	// settings'.
	ChainOK bool `json:"chain_ok"`
}

// VerifyReport is the result of Verify. It names users by ID only.
type VerifyReport struct {
	// CheckedAt is the time of the check (VerifyOptions.Now).
	CheckedAt time.Time `json:"checked_at"`
	// Seconds is how long the check took.
	Seconds float64 `json:"seconds"`
	// Verified is true when the check completed without a finding (OK).
	Verified bool `json:"verified"`
	// Complete is false when the check stopped early (an error, or its
	// context ended): the counts cover the users checked until then.
	Complete bool `json:"complete"`
	// Shards is the store's shard count.
	Shards int `json:"shards"`
	// Retention is the settings' receipt retention and PurgeGrace the
	// grace beyond it, as Go durations ("26280h0m0s").
	Retention  string `json:"retention"`
	PurgeGrace string `json:"purge_grace"`
	// Users is the number of users checked.
	Users int64 `json:"users"`
	// Receipts is the number of receipts read.
	Receipts int64 `json:"receipts"`
	// ChainsVerified is the number of users whose receipt chain verified.
	ChainsVerified int64 `json:"chains_verified"`
	// ChainsBroken is the number of users whose chain did not, and
	// BrokenByKind counts them per kind (every chain kind is listed).
	ChainsBroken int64                 `json:"chains_broken"`
	BrokenByKind map[FindingKind]int64 `json:"broken_by_kind"`
	// Unreadable is the number of users whose record or receipts could
	// not be read (ErrCorrupt).
	Unreadable int64 `json:"unreadable"`
	// NotPurged counts receipts past the retention and the purge grace
	// that are still kept, and their users.
	NotPurged Count `json:"not_purged"`
	// Unredacted counts receipts of erased changes that still hold
	// personal content, and their users.
	Unredacted Count `json:"unredacted"`
	// Tags counts records with tags their consent state does not allow.
	Tags TagViolations `json:"tag_violations"`
	// Settings is the check of the settings receipts.
	Settings SettingsCheck `json:"settings"`
	// FindingsTotal counts every finding; Findings lists the first
	// MaxFindings in the order of user numbers (the settings first).
	FindingsTotal int64     `json:"findings_total"`
	Findings      []Finding `json:"findings"`
	// Hints say what a pattern of findings probably means.
	Hints []string `json:"hints,omitempty"`
}

// OK reports whether the check completed without a finding.
func (r *VerifyReport) OK() bool { return r.Complete && r.FindingsTotal == 0 }

// UserVerification is the result of VerifyUser.
type UserVerification struct {
	UserID string `json:"user"`
	// Version is the record's version (0 for a user never seen).
	Version uint64 `json:"version"`
	// Receipts is how many receipts are kept.
	Receipts int `json:"receipts"`
	// ChainOK is true when the receipt chain verified.
	ChainOK bool `json:"chain_ok"`
	// Findings are every finding about the user, none when all is well.
	Findings []Finding `json:"findings"`
}

// OK reports whether the user verified without a finding.
func (u *UserVerification) OK() bool { return len(u.Findings) == 0 }

// VerifyUser checks one user as Verify checks each: the receipt chain
// under key, receipts past retention, redaction after erasure, tags. A user
// never seen has no finding unless receipts are kept for them. Store
// errors other than ErrCorrupt (which is a FindingUnreadable) are returned.
func VerifyUser(ctx context.Context, s Store, key consent.ChainKey, userID string, opts VerifyOptions) (UserVerification, error) {
	if err := consent.ValidUserID(userID); err != nil {
		return UserVerification{}, err
	}
	o := opts.withDefaults()
	out := UserVerification{UserID: userID, Findings: []Finding{}}
	set, err := s.Settings(ctx)
	if err != nil {
		return out, err
	}
	rec, err := s.Get(ctx, userID)
	switch {
	case err == nil, errors.Is(err, ErrNotFound):
		rec.UserID = userID
	case errors.Is(err, ErrCorrupt):
		out.Findings = append(out.Findings, unreadable(userID, 0))
		return out, nil
	default:
		return out, err
	}
	rs, err := s.Receipts(ctx, userID)
	switch {
	case errors.Is(err, ErrCorrupt):
		out.Version = rec.Version
		out.Findings = append(out.Findings, unreadable(userID, 0))
		return out, nil
	case err != nil:
		return out, err
	}
	c := newChecker(&set, key, o)
	uc := c.check(rec, rs)
	out.Version, out.Receipts, out.ChainOK = rec.Version, len(rs), uc.chain == ""
	out.Findings = append(out.Findings, uc.findings...)
	return out, nil
}

// Verify checks every user of s (which must list its users: UserLister)
// under key, in batches of users checked by opts.Workers at once, and
// reports what it found. The settings are read once, at the start. Users
// added while it runs may or may not be checked. Store errors stop it:
// it returns the report so far (Complete false) with the error, as it
// does when ctx ends. A store without UserLister fails with an error
// wrapping errors.ErrUnsupported.
func Verify(ctx context.Context, s Store, key consent.ChainKey, opts VerifyOptions) (VerifyReport, error) {
	start := time.Now()
	o := opts.withDefaults()
	rep := VerifyReport{
		CheckedAt:    o.Now.UTC(),
		Shards:       s.Shards(),
		PurgeGrace:   o.PurgeGrace.String(),
		BrokenByKind: map[FindingKind]int64{},
		Tags:         TagViolations{ByKind: map[FindingKind]int64{}},
		Findings:     []Finding{},
	}
	for _, k := range chainKinds {
		rep.BrokenByKind[k] = 0
	}
	for _, k := range tagKinds {
		rep.Tags.ByKind[k] = 0
	}
	finish := func(err error) (VerifyReport, error) {
		rep.Seconds = time.Since(start).Seconds()
		rep.Complete = err == nil
		rep.Verified = rep.OK()
		rep.Hints = hints(&rep)
		return rep, err
	}
	ul, ok := s.(UserLister)
	if !ok {
		return finish(fmt.Errorf("%w: the store cannot list its users", errors.ErrUnsupported))
	}
	set, err := s.Settings(ctx)
	if err != nil {
		return finish(err)
	}
	rep.Retention = set.RetentionOrDefault().String()
	v := &verifier{s: s, ul: ul, c: newChecker(&set, key, o), o: o, rep: &rep}
	if err := v.settings(ctx, &set); err != nil {
		return finish(err)
	}
	var total int64
	for sh := 0; sh < rep.Shards; sh++ {
		n, err := countUsers(ctx, ul, sh)
		if err != nil {
			return finish(err)
		}
		total += int64(n)
	}
	v.total.Store(total)
	v.progress(true)
	err = v.run(ctx)
	v.progress(true)
	v.trim(true)
	return finish(err)
}

// countUsers returns how many users shard holds: the largest k for which
// ListUsers(shard, k, 1) returns a user, found in O(log k) calls.
func countUsers(ctx context.Context, ul UserLister, shard int) (int, error) {
	has := func(k int) (bool, error) {
		ids, err := ul.ListUsers(ctx, shard, k, 1)
		return len(ids) > 0, err
	}
	lo, hi := 0, 1 // users 1..lo exist; user hi does not (once found)
	for {
		ok, err := has(hi)
		if err != nil {
			return 0, err
		}
		if !ok {
			break
		}
		lo, hi = hi, hi*2
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := has(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// verifier is one run of Verify.
type verifier struct {
	s  Store
	ul UserLister
	c  *checker
	o  VerifyOptions

	mu  sync.Mutex // guards rep
	rep *VerifyReport

	done, total atomic.Int64
	progMu      sync.Mutex
	lastDone    int64
	lastTotal   int64
	called      bool
}

// job is a batch of users listed from shard, the first with local number
// from.
type job struct {
	shard, from int
	ids         []string
}

// run lists every shard's users and checks them on o.Workers goroutines.
func (v *verifier) run(parent context.Context) error {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	jobs := make(chan job, v.o.Workers)
	var wg sync.WaitGroup
	for range v.o.Workers {
		wg.Go(func() {
			for j := range jobs {
				if ctx.Err() != nil {
					continue // drain
				}
				if err := v.batch(ctx, j); err != nil {
					cancel(err)
				}
			}
		})
	}
	n := v.o.BatchSize
list:
	for sh := 0; sh < v.rep.Shards; sh++ {
		for from := 1; ; {
			ids, err := v.ul.ListUsers(ctx, sh, from, n)
			if err != nil {
				cancel(err)
				break list
			}
			if len(ids) > 0 {
				select {
				case jobs <- job{shard: sh, from: from, ids: ids}:
				case <-ctx.Done():
					break list
				}
			}
			if len(ids) < n {
				break
			}
			from += len(ids)
		}
	}
	close(jobs)
	wg.Wait()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// partial is what one batch found, merged into the report at once.
type partial struct {
	users, receipts, verified, broken, unreadable int64
	brokenBy, tagBy                               map[FindingKind]int64
	notPurged, unredacted                         Count
	tagUsers                                      int64
	findings                                      []Finding
	total                                         int64
}

func (p *partial) add(uc *userCheck) {
	p.users++
	p.receipts += int64(uc.receipts)
	switch {
	case uc.unreadable:
		p.unreadable++
	case uc.chain == "":
		p.verified++
	default:
		p.broken++
		if p.brokenBy == nil {
			p.brokenBy = map[FindingKind]int64{}
		}
		p.brokenBy[uc.chain]++
	}
	if uc.notPurged > 0 {
		p.notPurged.Receipts += int64(uc.notPurged)
		p.notPurged.Users++
	}
	if uc.unredacted > 0 {
		p.unredacted.Receipts += int64(uc.unredacted)
		p.unredacted.Users++
	}
	if len(uc.tags) > 0 {
		p.tagUsers++
		if p.tagBy == nil {
			p.tagBy = map[FindingKind]int64{}
		}
		for _, k := range uc.tags {
			p.tagBy[k]++
		}
	}
	p.total += int64(len(uc.findings))
	p.findings = append(p.findings, uc.findings...)
}

// batch checks one batch of users.
func (v *verifier) batch(ctx context.Context, j job) error {
	recs, err := getMany(ctx, v.s, j.ids)
	var bad map[string]bool
	if ids := Corrupted(err); len(ids) > 0 {
		bad = make(map[string]bool, len(ids))
		for _, id := range ids {
			bad[id] = true
		}
	} else if err != nil {
		return err
	}
	var p partial
	for i, id := range j.ids {
		num := uint64(UserNumber(j.shard, j.from+i, v.rep.Shards))
		if bad[id] || recs[i].Version == 0 {
			p.add(&userCheck{unreadable: true, findings: []Finding{unreadable(id, num)}})
			continue
		}
		rs, err := v.s.Receipts(ctx, id)
		if errors.Is(err, ErrCorrupt) {
			p.add(&userCheck{unreadable: true, findings: []Finding{unreadable(id, num)}})
			continue
		} else if err != nil {
			return err
		}
		uc := v.c.check(recs[i], rs)
		for k := range uc.findings {
			uc.findings[k].order = num
		}
		p.add(&uc)
	}
	v.merge(&p)
	v.done.Add(int64(len(j.ids)))
	v.progress(false)
	return nil
}

// getMany reads the records of ids in one call when the store can, else
// one by one (a user never seen, or missing, is reported as corrupt).
func getMany(ctx context.Context, s Store, ids []string) ([]consent.Record, error) {
	if bg, ok := s.(BatchGetter); ok {
		return bg.GetMany(ctx, ids)
	}
	out := make([]consent.Record, len(ids))
	var bad []string
	for i, id := range ids {
		r, err := s.Get(ctx, id)
		switch {
		case err == nil:
		case errors.Is(err, ErrNotFound), errors.Is(err, ErrCorrupt):
			bad = append(bad, id)
			r = consent.NewRecord(id)
		default:
			return nil, err
		}
		out[i] = r
	}
	if len(bad) > 0 {
		return out, &CorruptError{UserIDs: bad, Detail: "listed but no record could be read"}
	}
	return out, nil
}

func (v *verifier) merge(p *partial) {
	v.mu.Lock()
	defer v.mu.Unlock()
	r := v.rep
	r.Users += p.users
	r.Receipts += p.receipts
	r.ChainsVerified += p.verified
	r.ChainsBroken += p.broken
	r.Unreadable += p.unreadable
	for k, n := range p.brokenBy {
		r.BrokenByKind[k] += n
	}
	r.NotPurged.Receipts += p.notPurged.Receipts
	r.NotPurged.Users += p.notPurged.Users
	r.Unredacted.Receipts += p.unredacted.Receipts
	r.Unredacted.Users += p.unredacted.Users
	r.Tags.Users += p.tagUsers
	for k, n := range p.tagBy {
		r.Tags.ByKind[k] += n
	}
	r.FindingsTotal += p.total
	if v.o.MaxFindings > 0 {
		r.Findings = append(r.Findings, p.findings...)
		v.trimLocked(false)
	}
}

// trim keeps the first MaxFindings findings; without final, only once
// enough have piled up to be worth sorting.
func (v *verifier) trim(final bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.trimLocked(final)
}

func (v *verifier) trimLocked(final bool) {
	fs := v.rep.Findings
	if !final && len(fs) < 4*v.o.MaxFindings+1024 {
		return
	}
	slices.SortStableFunc(fs, func(a, b Finding) int {
		switch {
		case a.order != b.order:
			if a.order < b.order {
				return -1
			}
			return 1
		}
		return a.Kind.rank() - b.Kind.rank()
	})
	if len(fs) > v.o.MaxFindings {
		clear(fs[v.o.MaxFindings:])
		fs = fs[:v.o.MaxFindings]
	}
	v.rep.Findings = fs
}

// progress calls the Progress callback (serialized, done never
// decreasing); with force it calls it even when nothing moved since the
// last call, unless that call said the same.
func (v *verifier) progress(force bool) {
	if v.o.Progress == nil {
		return
	}
	v.progMu.Lock()
	defer v.progMu.Unlock()
	d := v.done.Load()
	t := max(v.total.Load(), d)
	if d < v.lastDone || (d == v.lastDone && t == v.lastTotal && (v.called || !force)) {
		return
	}
	v.lastDone, v.lastTotal, v.called = d, t, true
	v.o.Progress(d, t)
}

// settings checks the settings receipts: they link up under the key and
// the newest is the current settings' (Seq = Version - 1).
func (v *verifier) settings(ctx context.Context, set *consent.Settings) error {
	rs, err := v.s.SettingsReceipts(ctx)
	if err != nil {
		return err
	}
	after, err := v.s.Settings(ctx)
	if err != nil {
		return err
	}
	r := v.rep
	r.Settings.Receipts = len(rs)
	detail := ""
	if err := consent.VerifyLinks(rs, v.c.key); err != nil {
		detail = chainDetail(err)
	} else if n := len(rs); n > 0 && after.Version == set.Version && rs[n-1].Seq != uint64(set.Version-1) {
		detail = fmt.Sprintf("newest settings receipt is seq %d but the settings are at version %d: receipts were removed or the settings replaced", rs[n-1].Seq, set.Version)
	}
	r.Settings.ChainOK = detail == ""
	if detail != "" {
		r.FindingsTotal++
		if v.o.MaxFindings > 0 {
			r.Findings = append(r.Findings, Finding{Kind: FindingSettingsChain, Detail: detail})
		}
	}
	return nil
}

func unreadable(userID string, num uint64) Finding {
	return Finding{UserID: userID, Kind: FindingUnreadable, Detail: "the record or the receipts are missing or cannot be decoded", order: num}
}

// hints says what a pattern of findings probably means.
func hints(r *VerifyReport) []string {
	var out []string
	keyish := r.BrokenByKind[FindingEdited] + r.BrokenByKind[FindingForgedAnchor] + r.BrokenByKind[FindingForgedHead]
	if r.ChainsBroken > 0 && r.ChainsVerified == 0 && keyish == r.ChainsBroken {
		out = append(out, "no receipt chain verifies and every one fails a check under the chain key (receipt hashes, purge anchors, record heads): the chain key given is probably not the one the store seals with")
	}
	if r.NotPurged.Receipts > 0 {
		out = append(out, "receipts past their retention are kept: is the periodic purge (recguard serve runs it hourly) running?")
	}
	return out
}

// checker checks one user's record and receipts.
type checker struct {
	set       *consent.Settings
	key       consent.ChainKey
	now       time.Time
	retention time.Duration
	cutoffMS  int64 // receipts older (in ms) are past the retention and the grace
}

func newChecker(set *consent.Settings, key consent.ChainKey, o VerifyOptions) *checker {
	ret := set.RetentionOrDefault()
	return &checker{set: set, key: key, now: o.Now, retention: ret, cutoffMS: o.Now.Add(-ret - o.PurgeGrace).UnixMilli()}
}

// userCheck is what checking one user found.
type userCheck struct {
	receipts   int
	unreadable bool
	chain      FindingKind // "" when the chain verified
	notPurged  int
	unredacted int
	tags       []FindingKind
	findings   []Finding
}

func (c *checker) check(rec consent.Record, rs []consent.Receipt) userCheck {
	uc := userCheck{receipts: len(rs)}
	id := rec.UserID
	add := func(k FindingKind, format string, args ...any) {
		uc.findings = append(uc.findings, Finding{UserID: id, Kind: k, Detail: fmt.Sprintf(format, args...)})
	}
	h := consent.HeadOf(rec, c.set, c.now)
	if err := consent.VerifyChain(rs, h, c.key); err != nil {
		uc.chain = classifyChain(rs, h, c.key)
		add(uc.chain, "%s", chainDetail(err))
	}

	// Receipts a purge would have deleted: the oldest ones past the
	// retention, up to the first that is not.
	for _, r := range rs {
		if r.At.UnixMilli() >= c.cutoffMS {
			break
		}
		uc.notPurged++
	}
	if uc.notPurged > 0 {
		add(FindingNotPurged, "%d receipts (seq %d to %d) are past the retention of %s and still kept", uc.notPurged, rs[0].Seq, rs[uc.notPurged-1].Seq, c.retention)
	}

	// Receipts up to the erasure must be redacted.
	last := -1
	if rec.State.Erased && len(rs) > 0 {
		last = len(rs) - 1
	} else {
		for i := len(rs) - 1; i >= 0; i-- {
			if rs[i].Op == consent.OpErase {
				last = i
				break
			}
		}
	}
	first := uint64(0)
	for i := 0; i <= last; i++ {
		if !rs[i].Redacted {
			if uc.unredacted == 0 {
				first = rs[i].Seq
			}
			uc.unredacted++
		}
	}
	if uc.unredacted > 0 {
		add(FindingUnredacted, "%d receipts up to the erasure (seq %d) are not redacted, the first seq %d", uc.unredacted, rs[last].Seq, first)
	}

	// Tags the consent state does not allow.
	tag := func(k FindingKind, format string, args ...any) {
		uc.tags = append(uc.tags, k)
		add(k, format, args...)
	}
	ts, st := rec.Tags, rec.State
	if st.Erased {
		if len(ts.Entries) > 0 || len(ts.Suppressed) > 0 {
			tag(FindingTagsOnErased, "the erased record holds %d tags and %d suppressions", len(ts.Entries), len(ts.Suppressed))
		}
		return uc
	}
	var sensitive, suppressed, prohibited int
	for _, e := range ts.Entries {
		if ts.IsSuppressed(e.Tag) {
			suppressed++
		}
		ns := c.set.Taxonomy.Lookup(e.Tag)
		if ns.Prohibited {
			prohibited++
		}
		if ns.Sensitive != "" && !st.SensitiveHeld(ns.Sensitive, c.set) {
			sensitive++
		}
	}
	if sensitive > 0 {
		tag(FindingSensitiveWithoutConsent, "%d tags of a sensitive category are stored without its separate consent in force", sensitive)
	}
	if suppressed > 0 {
		tag(FindingSuppressedPresent, "%d tags are present although the user deleted them (suppressed)", suppressed)
	}
	if len(ts.Entries) > 0 && !st.GuardianOK(c.set) {
		tag(FindingMinorWithoutGuardian, "a minor without guardian consent in force has %d tags", len(ts.Entries))
	}
	if prohibited > 0 {
		tag(FindingProhibitedTag, "%d tags of a prohibited namespace are stored", prohibited)
	}
	return uc
}

// chainDetail is the detail of a consent.VerifyChain or VerifyLinks error:
// sequence numbers and versions, nothing personal.
func chainDetail(err error) string {
	var fe *consent.FieldError
	if errors.As(err, &fe) {
		return fe.Detail
	}
	return err.Error()
}

// classifyChain names the first fault of a chain consent.VerifyChain
// refused, walking it in the same order.
func classifyChain(rs []consent.Receipt, h consent.Head, key consent.ChainKey) FindingKind {
	if h.Version > 0 && !h.Sealed(key) {
		return FindingForgedHead
	}
	a := h.Purged
	if !a.IsZero() {
		if !a.Sealed(key) {
			return FindingForgedAnchor
		}
		if h.Retention > 0 && h.Now.Sub(a.At) < h.Retention {
			return FindingAnchorBeforeRetention
		}
		if a.Seq > h.Version {
			return FindingHeadMismatch
		}
	}
	if len(rs) == 0 {
		if h.Version > 0 && a.Seq == h.Version {
			return FindingHeadMismatch // everything purged, but not up to the head's hash
		}
		return FindingTruncatedNewest
	}
	for i := range rs {
		r := &rs[i]
		if r.Seq == 0 || consent.VerifyLinks(rs[i:i+1], key) != nil {
			return FindingEdited
		}
		if i == 0 {
			switch {
			case r.Seq == 1:
			case (a.IsZero() || r.Seq > a.Seq+1) && !seqAmong(rs[1:], a.Seq, r.Seq):
				return FindingTruncatedOldest
			case r.Seq != a.Seq+1 || r.PrevHash != a.Hash:
				return FindingEdited
			}
			continue
		}
		p := &rs[i-1]
		switch {
		case r.Seq > p.Seq+1 && !seqAmong(rs[i+1:], p.Seq, r.Seq):
			return FindingGap
		case r.Seq != p.Seq+1, r.PrevHash != p.Hash, r.UserID != p.UserID:
			return FindingEdited
		}
	}
	switch last := &rs[len(rs)-1]; {
	case last.Seq < h.Version:
		return FindingTruncatedNewest
	case last.Seq != h.Version, last.Hash != h.LastHash:
		return FindingHeadMismatch
	}
	erased := false
	for i := len(rs) - 1; i >= 0; i-- {
		erased = erased || rs[i].Op == consent.OpErase
		if rs[i].Redacted && !erased {
			return FindingEdited // content removed without an erasure
		}
	}
	return FindingBroken
}

// seqAmong reports whether a receipt of rs has a Seq strictly between lo
// and hi: the receipts that seem missing are there, out of order.
func seqAmong(rs []consent.Receipt, lo, hi uint64) bool {
	return slices.ContainsFunc(rs, func(r consent.Receipt) bool { return r.Seq > lo && r.Seq < hi })
}
