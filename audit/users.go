package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// UserFacts gives each user's tags and flags, written as in segment
// expressions: tags "ns:value"; flags "consent:personalization_off",
// "consent:guardian", "refused:<channel>", "sensitive:<category>", "minor",
// "erased". Facts returns the facts of those of userIDs it knows (a user
// missing from the map has none). It may be called many times, each time
// with users not asked before.
type UserFacts interface {
	Facts(ctx context.Context, userIDs []string) (map[string][]string, error)
}

// ExcludingFacts is a UserFacts that also knows users an audit must leave
// out entirely: those who restricted processing of their data (Art. 23:
// storage only, no audit) and those whose personal data was erased
// (Art. 24). Run asks FactsExcluding instead of Facts when users has it,
// and leaves every event of an excluded user out of every group, mode and
// price cell (Report.Excluded counts them). StoreFacts is one.
type ExcludingFacts interface {
	UserFacts
	// FactsExcluding returns what Facts returns, and those of userIDs to
	// leave out (they have no facts).
	FactsExcluding(ctx context.Context, userIDs []string) (facts map[string][]string, excluded []string, err error)
}

// Excluded reports whether an audit leaves rec's user out entirely: they
// restricted processing of their data (Art. 23) or were erased (Art. 24).
// A nil record is not excluded.
func Excluded(rec *consent.Record) bool {
	return rec != nil && (rec.State.Restricted || rec.State.Erased)
}

// fileFacts is a users file held in memory.

type userLine struct {
	ID    string   `json:"id"`
	Tags  []string `json:"tags"`
	Flags []string `json:"flags"`
}

// UsersFile reads a users file: one JSON object per line,
// {"id": "...", "tags": ["ns:value", ...], "flags": ["minor", ...]}; blank
// lines are ignored. A line that does not decode (unknown fields are
// malformed), has no id, repeats an id seen before, or holds a tag that is
// not a tag or a flag that is not a flag (as segment expressions write
// them) is skipped and reported as a LineProblem. The error is for reading
// r only. The facts are held in memory.
func UsersFile(r io.Reader, name string) (UserFacts, []LineProblem, error) {
	lr := newLineReader(r)
	facts := newFileFacts()
	known := map[string]parsedFact{} // fact as written -> parsed, canonical
	var probs []LineProblem
	var fs []string // the facts of the line
	for {
		b, tooLong, err := lr.next()
		if err == io.EOF {
			facts.done()
			return facts, probs, nil
		}
		if err != nil {
			return nil, probs, fmt.Errorf("audit: reading users %s: %w", name, err)
		}
		problem := func(reason string) {
			probs = append(probs, LineProblem{File: name, Line: lr.line, Reason: reason})
		}
		if tooLong {
			problem(tooLongReason)
			continue
		}
		if blankLine(b) {
			continue
		}
		var u userLine
		if !decodeUserLine(b, &u) {
			u = userLine{}
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&u); err != nil {
				problem(strings.TrimPrefix(err.Error(), "json: "))
				continue
			}
			if _, err := dec.Token(); err != io.EOF {
				problem("data after the JSON object")
				continue
			}
		}
		if u.ID == "" {
			problem("missing id")
			continue
		}
		if facts.has(u.ID) {
			problem(fmt.Sprintf("user %q already listed", clipText(u.ID)))
			continue
		}
		fs = fs[:0] // add copies them
		bad := ""
		lookup := func(s string) parsedFact {
			pf, ok := known[s]
			if !ok {
				pf = parseFact(s)
				if len(known) < 1<<16 {
					known[s] = pf
				}
			}
			return pf
		}
		for _, t := range u.Tags {
			pf := lookup(t)
			if !pf.ok || !pf.tag {
				bad = fmt.Sprintf("tag %q is not a tag ns:value", clipText(t))
				break
			}
			fs = append(fs, pf.canon)
		}
		for _, f := range u.Flags {
			if bad != "" {
				break
			}
			pf := lookup(f)
			if !pf.ok || pf.tag {
				bad = fmt.Sprintf("flag %q is not one of consent:personalization_off, consent:guardian, refused:<channel>, sensitive:<category>, minor, erased", clipText(f))
				break
			}
			fs = append(fs, pf.canon)
		}
		if bad != "" {
			problem(bad)
			continue
		}
		facts.add(u.ID, fs)
	}
}

// parsedFact is a tag or flag as parsed: whether it is one, whether it is
// a tag, and its canonical form (shared by every user).
type parsedFact struct {
	canon   string
	ok, tag bool
}

// parseFact parses one tag or flag as a single segment atom.
func parseFact(s string) parsedFact {
	if s == "" || strings.ContainsAny(s, " \t\r\n!&|()*") {
		return parsedFact{}
	}
	seg, err := tags.ParseSegment(s)
	if err != nil || seg.Op != tags.OpAtom {
		return parsedFact{}
	}
	return parsedFact{canon: seg.Atom.String(), ok: true, tag: seg.Atom.Kind == tags.AtomTag}
}

// decodeUserLine decodes the plain shape of a users line without
// encoding/json (no escapes, nulls, duplicate or unknown keys); false means
// encoding/json decides.
func decodeUserLine(b []byte, u *userLine) bool {
	i := jsonSkipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = jsonSkipWS(b, i+1)
	seen := 0
	for i < len(b) && b[i] != '}' {
		key, j, ok := jsonKey(b, i)
		if !ok {
			return false
		}
		i = j
		var bit int
		switch string(key) {
		case "id":
			s, j, ok := jsonPlainString(b, i)
			if !ok {
				return false
			}
			bit, i, u.ID = 1, j, string(s)
		case "tags", "flags":
			if i >= len(b) || b[i] != '[' {
				return false
			}
			i = jsonSkipWS(b, i+1)
			out := []string{}
			for i < len(b) && b[i] != ']' {
				s, j, ok := jsonPlainString(b, i)
				if !ok {
					return false
				}
				out = append(out, string(s))
				i = jsonSkipWS(b, j)
				if i < len(b) && b[i] == ',' {
					i = jsonSkipWS(b, i+1)
					if i < len(b) && b[i] == ']' {
						return false
					}
				} else if i >= len(b) || b[i] != ']' {
					return false
				}
			}
			if i >= len(b) {
				return false
			}
			i++
			if key[0] == 't' {
				bit, u.Tags = 2, out
			} else {
				bit, u.Flags = 4, out
			}
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		i = jsonSkipWS(b, i)
		if i < len(b) && b[i] == ',' {
			i = jsonSkipWS(b, i+1)
			if i >= len(b) || b[i] == '}' {
				return false
			}
		} else if i >= len(b) || b[i] != '}' {
			return false
		}
	}
	if i >= len(b) {
		return false
	}
	return jsonSkipWS(b, i+1) == len(b)
}

// StoreFacts returns the users' facts from st's records, read in batches
// (GetMany when st is a store.BatchGetter, else Get one by one), under the
// store's settings as they are at each call. A user's facts are the atoms
// that hold for the record (consent.HeldAtoms, written as in segment
// expressions) for the purpose of the recommendations audited,
// consent.PurposePersonalization, so a group means what consent.AtomHolds
// says each atom means: a tag only where a personalized ranker may use it
// now (not suppressed or prohibited, sensitive only with a consent given
// for personalization that still counts, nothing of a minor without
// guardian consent or of an erased user); "sensitive:X" where the consent
// for X given for personalization counts (consent.State.SensitiveOK);
// "consent:guardian" for a minor whose guardian's consent counts;
// "consent:personalization_off", "minor" and "refused:<channel>" as
// recorded. A user never changed (Version 0), one whose record is corrupt
// and an ID the store cannot hold (consent.ValidUserID) have no facts.
//
// A user who restricted processing of their data or was erased (see
// Excluded) has no facts either, and the UserFacts returned is an
// ExcludingFacts that names them: Run leaves their events out entirely.
func StoreFacts(st store.Store) UserFacts { return storeFacts{st} }

type storeFacts struct{ st store.Store }

const storeBatch = 500

func (s storeFacts) Facts(ctx context.Context, ids []string) (map[string][]string, error) {
	facts, _, err := s.FactsExcluding(ctx, ids)
	return facts, err
}

func (s storeFacts) FactsExcluding(ctx context.Context, ids []string) (map[string][]string, []string, error) {
	set, err := s.st.Settings(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("audit: reading the store's settings: %w", err)
	}
	valid := make([]string, 0, len(ids))
	for _, id := range ids {
		if consent.ValidUserID(id) == nil {
			valid = append(valid, id)
		}
	}
	out := make(map[string][]string, len(valid))
	var excluded []string
	for start := 0; start < len(valid); start += storeBatch {
		chunk := valid[start:min(start+storeBatch, len(valid))]
		recs, err := readRecords(ctx, s.st, chunk)
		if err != nil {
			return nil, nil, err
		}
		for i := range recs {
			if Excluded(&recs[i]) {
				excluded = append(excluded, recs[i].UserID)
				continue
			}
			if fs := RecordFacts(&recs[i], &set); len(fs) > 0 {
				out[recs[i].UserID] = fs
			}
		}
	}
	return out, excluded, nil
}

// readRecords reads the records of ids (valid user IDs) from st in one
// round trip when st is a store.BatchGetter, else one by one. A user whose
// record is missing or corrupt is unknown: their record comes back empty
// (consent.NewRecord), so they have no facts and are in no group, and the
// rest of the audit goes on. Any other error of the store is returned.
func readRecords(ctx context.Context, st store.Store, ids []string) ([]consent.Record, error) {
	if bg, ok := st.(store.BatchGetter); ok {
		recs, err := bg.GetMany(ctx, ids)
		if err != nil && store.Corrupted(err) == nil {
			return nil, fmt.Errorf("audit: reading users: %w", err)
		}
		for _, id := range store.Corrupted(err) {
			for i := range recs {
				if recs[i].UserID == id {
					recs[i] = consent.NewRecord(id)
				}
			}
		}
		return recs, nil
	}
	recs := make([]consent.Record, 0, len(ids))
	for _, id := range ids {
		rec, err := st.Get(ctx, id)
		switch {
		case errors.Is(err, store.ErrCorrupt):
			rec = consent.NewRecord(id)
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return nil, fmt.Errorf("audit: reading user %q: %w", id, err)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// RecordFacts returns the facts of one record under set, as StoreFacts
// gives them: consent.HeldAtoms for consent.PurposePersonalization, as
// segment atoms are written. A nil record, one never changed (Version 0)
// and one of a user an audit leaves out (Excluded: restricted or erased)
// have none.
func RecordFacts(rec *consent.Record, set *consent.Settings) []string {
	if rec == nil || rec.Version == 0 || Excluded(rec) {
		return nil
	}
	atoms := consent.HeldAtoms(rec, set, consent.PurposePersonalization)
	if len(atoms) == 0 {
		return nil
	}
	out := make([]string, len(atoms))
	for i, a := range atoms {
		out[i] = a.String()
	}
	return out
}
