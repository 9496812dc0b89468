package redis

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// Erasure by crypto-shredding (Art. 24).
//
// Every user has a data key: 32 random bytes in field k of the user's hash,
// created with the user's first change (or first outcome event). The
// personal content of everything about the user that cannot be rewritten in
// place (changelog entries, receipts, outcome events) is sealed under it
// with AES-256-GCM. An erasure deletes the key in the same script that
// writes the tombstone: from then on those bytes are noise, and readers see
// Shredded changelog entries, redacted receipts and no outcome events.
//
// Field st of the user's hash is the user's status for writers and readers
// that do not decode the record: "e" erased, "r" restricted, absent
// otherwise.

// dataKeyLen is the length of a user's data key.
const dataKeyLen = 32

func newDataKey() []byte {
	k := make([]byte, dataKeyLen)
	if _, err := rand.Read(k); err != nil { // never fails (crypto/rand)
		panic(err)
	}
	return k
}

// keyID names a data key without revealing it: content sealed under a key
// carries the key's ID, so a reader tells content sealed under an older key
// (the user was erased and came back: shredded) from content damaged under
// the current one.
func keyID(key []byte) string {
	sum := sha256.Sum256(append([]byte("recguard data key id\x00"), key...))
	return hex.EncodeToString(sum[:6])
}

// Associated data binds sealed content to its place: a blob moved to
// another entry, receipt, user or kind does not open.
func entryAD(user string, version uint64) []byte {
	return []byte("entry\x00" + user + "\x00" + strconv.FormatUint(version, 10))
}
func receiptAD(user string, seq uint64) []byte {
	return []byte("receipt\x00" + user + "\x00" + strconv.FormatUint(seq, 10))
}
func eventAD(user string) []byte { return []byte("event\x00" + user) }

// sealBlob encrypts plain under key bound to ad: "<key ID>.<base64>".
func sealBlob(key, plain, ad []byte) string {
	aead := mustAEAD(key)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	return keyID(key) + "." + base64.RawStdEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, ad))
}

var (
	// errShredded reports sealed content whose key is gone: sealed under
	// another key than the user's current one, or the user has none.
	errShredded = errors.New("sealed content: key gone")
	// errDamaged reports sealed content that does not open under the key
	// it names: edited, truncated, moved.
	errDamaged = errors.New("sealed content: damaged")
)

// sealRaw is sealBlob without base64: "<key ID>!<nonce and ciphertext>",
// for a changelog entry's field of its own (a third smaller; a receipt
// item, whose parts are split at spaces, keeps sealBlob).
func sealRaw(key, plain, ad []byte) string {
	aead := mustAEAD(key)
	kid := keyID(key)
	out := make([]byte, len(kid)+1, len(kid)+1+aead.NonceSize()+len(plain)+aead.Overhead())
	copy(out, kid)
	out[len(kid)] = '!'
	nonce := out[len(out) : len(out)+aead.NonceSize()]
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	out = aead.Seal(out[:len(out)+aead.NonceSize()], nonce, plain, ad)
	return string(out)
}

// keyIDLen is the length of keyID's result.
const keyIDLen = 12

// openBlob decrypts a sealBlob or sealRaw result under key, checking ad.
func openBlob(key []byte, blob string, ad []byte) ([]byte, error) {
	if len(blob) <= keyIDLen || blob[keyIDLen] != '.' && blob[keyIDLen] != '!' {
		return nil, errDamaged
	}
	kid := blob[:keyIDLen]
	if len(key) != dataKeyLen || kid != keyID(key) {
		return nil, errShredded
	}
	var raw []byte
	if blob[keyIDLen] == '!' {
		raw = []byte(blob[keyIDLen+1:])
	} else {
		var err error
		if raw, err = base64.RawStdEncoding.DecodeString(blob[keyIDLen+1:]); err != nil {
			return nil, errDamaged
		}
	}
	aead := mustAEAD(key)
	if len(raw) < aead.NonceSize()+aead.Overhead() {
		return nil, errDamaged
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], ad)
	if err != nil {
		return nil, errDamaged
	}
	return plain, nil
}

func mustAEAD(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return a
}

// receiptSecret is the personal part of a receipt, sealed under the user's
// data key in the receipt list and the changelog.
type receiptSecret struct {
	Subject string `json:"s,omitempty"`
	Old     string `json:"o,omitempty"`
	New     string `json:"n,omitempty"`
	Purpose string `json:"p,omitempty"`
	Reason  string `json:"r,omitempty"`
	Ref     string `json:"f,omitempty"`
	Salt    string `json:"t,omitempty"`
}

func secretOf(rc *consent.Receipt) receiptSecret {
	return receiptSecret{Subject: rc.Subject, Old: rc.Old, New: rc.New, Purpose: rc.Purpose, Reason: rc.Reason, Ref: rc.Ref, Salt: rc.Salt}
}

// restore puts the personal fields back into a redacted receipt.
func (p receiptSecret) restore(rc *consent.Receipt) {
	rc.Subject, rc.Old, rc.New, rc.Purpose, rc.Reason, rc.Ref, rc.Salt = p.Subject, p.Old, p.New, p.Purpose, p.Reason, p.Ref, p.Salt
	rc.Redacted = false
}

// entrySecret is the sealed payload of a changelog entry: the record after
// the change, the record before it as a delta (D, see prevDelta) or, when
// no delta rebuilds it exactly or for entries written before deltas, whole
// (P), and the receipt's personal fields.
type entrySecret struct {
	Record consent.Record  `json:"r"`
	Prev   *consent.Record `json:"p,omitempty"`
	D      *prevDelta      `json:"d,omitempty"`
	Rc     receiptSecret   `json:"c"`
}

// newEntrySecret returns the sealed payload of the change from prev to
// next with receipt rc.
func newEntrySecret(prev, next *consent.Record, rc *consent.Receipt) entrySecret {
	es := entrySecret{Record: *next, Rc: secretOf(rc)}
	if d, ok := makeDelta(prev, next); ok {
		es.D = &d
	} else {
		es.Prev = prev
	}
	return es
}

// prev returns the record before the change; false when the payload
// carries neither a delta nor a whole record (damaged). rec must carry the
// user's number.
func (es *entrySecret) prev(rec *consent.Record) (consent.Record, bool) {
	switch {
	case es.D != nil:
		return undo(rec, es.D), true
	case es.Prev != nil:
		p := *es.Prev
		p.Number = rec.Number
		return p, true
	}
	return consent.Record{}, false
}

// statusOf is the st field for a record.
func statusOf(r consent.Record) string {
	switch {
	case r.State.Erased:
		return "e"
	case r.State.Restricted:
		return "r"
	}
	return ""
}

// statusOfHash is the status of a user from the fields of the user's
// hash: st, or for a record written before st existed, its JSON (an
// erased record's state is {"erased":true}).
func statusOfHash(st, d string) string {
	if st != "" {
		return st
	}
	if strings.Contains(d, `"erased":true`) {
		return "e"
	}
	return ""
}

// userKeys reads the data key and status of users (valid IDs) in one
// pipelined round trip. A user with no key (or a damaged one) gets nil.
func (s *Store) userKeys(ctx context.Context, userIDs []string) (map[string][]byte, map[string]string, error) {
	keys := make(map[string][]byte, len(userIDs))
	status := make(map[string]string, len(userIDs))
	if len(userIDs) == 0 {
		return keys, status, nil
	}
	cmds := make(map[string]*goredis.SliceCmd, len(userIDs))
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, id := range userIDs {
			if _, ok := cmds[id]; !ok {
				cmds[id] = p.HMGet(ctx, s.k.user(store.ShardOf(id, s.shards), id), "k", "st", "d")
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, nil, unavailable(err)
	}
	for id, c := range cmds {
		v := c.Val()
		if len(v) == 3 {
			if k, ok := v[0].(string); ok && len(k) == dataKeyLen {
				keys[id] = []byte(k)
			}
			st, _ := v[1].(string)
			d, _ := v[2].(string)
			status[id] = statusOfHash(st, d)
		}
	}
	return keys, status, nil
}

// emptyKey stands for a key field that is there but empty (readForWrite
// returns "" for no field): a damaged key, replaced like one of the wrong
// length. It is never a valid key (wrong length).
const emptyKey = "\x00empty"

// applyArgs returns applyScript's ARGV for the change from rec to next with
// receipt rc. rawKey is the user's data key field as read ("" for none; a
// value of the wrong length is damaged and replaced). For an erasure,
// items are the user's receipt items as read: they are rewritten redacted
// (receipts written before sealing existed hold their content in clear).
//
// seen is the record JSON the writer last saw written ("" when it read the
// record just now): the script writes only if the stored JSON is still
// exactly that.
func (s *Store) applyArgs(rec, next consent.Record, rc *consent.Receipt, ver, rawKey, seen string, items []string, shard int) ([]any, error) {
	recJSON, err := json.Marshal(next)
	if err != nil {
		return nil, err
	}
	red := rc.Redact()
	redJSON, err := json.Marshal(red)
	if err != nil {
		return nil, err
	}
	atMS := rc.At.UnixMilli()
	var fields, rewrite []any
	var mode string
	var dk []byte
	blob := "-"
	switch {
	case next.State.Erased:
		// The erasure destroys the key: the entry and the receipt carry
		// the tombstone and the redacted receipt only, and every receipt
		// item is rewritten without its sealed part.
		mode = "drop"
		fields = []any{"u", next.UserID, "v", next.Version, "c", redJSON, "r", recJSON}
		red, err := redactItems(next.UserID, items)
		if err != nil {
			return nil, err
		}
		rewrite = red
	case rawKey == "":
		mode, dk = "new", newDataKey()
	case rawKey == emptyKey:
		mode, dk, rawKey = "replace", newDataKey(), ""
	case len(rawKey) != dataKeyLen:
		// A damaged key cannot open anything: replace it, so the user's
		// changes (an opt-out first of all) are still written.
		mode, dk = "replace", newDataKey()
		s.log.Warn("redis store: a user's data key was damaged and is replaced; content sealed under it is unreadable", "shard", shard)
	default:
		mode, dk = "have", []byte(rawKey)
	}
	if dk != nil {
		sec, err := json.Marshal(newEntrySecret(&rec, &next, rc))
		if err != nil {
			return nil, err
		}
		rsec, err := json.Marshal(secretOf(rc))
		if err != nil {
			return nil, err
		}
		blob = sealBlob(dk, rsec, receiptAD(next.UserID, rc.Seq))
		fields = []any{"u", next.UserID, "v", next.Version, "c", redJSON, "x", sealRaw(dk, sec, entryAD(next.UserID, next.Version))}
	}
	item := strconv.FormatInt(atMS, 10) + " " + blob + " " + string(redJSON)
	args := []any{ver, next.Version, recJSON, item, atMS, s.maxLen, next.UserID, s.shards, shard, s.epoch, string(dk), mode, statusOf(next), rawKey, seen, len(rewrite)}
	args = append(args, rewrite...)
	return append(args, fields...), nil
}

// decodeReceiptItem decodes one receipts-list item: "<ms> <blob> <JSON>"
// (a user's receipt: the redacted receipt and its sealed personal part, "-"
// for none) or "<ms> <JSON>" (a settings receipt, or a user's receipt
// written before sealing existed: kept whole). It returns the receipt and
// the blob ("" for a whole one).
func decodeReceiptItem(it string) (consent.Receipt, string, error) {
	var rc consent.Receipt
	_, rest, ok := strings.Cut(it, " ")
	if !ok {
		return rc, "", fmt.Errorf("malformed receipt item")
	}
	blob := ""
	if !strings.HasPrefix(rest, "{") {
		blob, rest, ok = strings.Cut(rest, " ")
		if !ok {
			return rc, "", fmt.Errorf("malformed receipt item")
		}
	}
	if err := json.Unmarshal([]byte(rest), &rc); err != nil {
		return rc, "", fmt.Errorf("receipt: %w", err)
	}
	return rc, blob, nil
}

// openReceipt puts the personal part of rc back from blob under the user's
// data key dk. Sealed under an older key (the user was erased since) rc
// stays redacted; damaged under the current key it comes back neither
// redacted nor whole, so its digest no longer matches and its chain does
// not verify. A whole receipt (blob "") of an erased user is redacted.
func openReceipt(rc *consent.Receipt, blob string, dk []byte, erased bool) {
	switch blob {
	case "":
		if erased {
			*rc = rc.Redact()
		}
		return
	case "-":
		return
	}
	plain, err := openBlob(dk, blob, receiptAD(rc.UserID, rc.Seq))
	if errors.Is(err, errShredded) {
		return
	}
	var sec receiptSecret
	if err == nil {
		err = json.Unmarshal(plain, &sec)
	}
	if err != nil {
		rc.Redacted = false // damaged: fails its digest
		return
	}
	sec.restore(rc)
}

// openEvents completes the events read from a changelog: a sealed entry
// (blobs[i] != "") is opened with its user's data key (Record, Prev and
// the receipt's personal fields filled); sealed under a key that is gone
// (the user was erased since) it is marked Shredded; damaged under the
// current key, or not matching its entry, it fails the read with a
// *store.TrimmedError at it (the reader rebuilds). An entry written whole
// before sealing existed is marked Shredded when its user is erased now.
func (s *Store) openEvents(ctx context.Context, evs []store.Event, blobs []string) error {
	var users []string
	for i := range evs {
		if evs[i].Record != nil {
			users = append(users, evs[i].Record.UserID)
		}
	}
	if len(users) == 0 {
		return nil
	}
	keys, status, err := s.userKeys(ctx, users)
	if err != nil {
		return err
	}
	for i, b := range blobs {
		ev := &evs[i]
		if ev.Record == nil {
			continue
		}
		u := ev.Record.UserID
		if b == "" {
			if status[u] == "e" || ev.Record.State.Erased {
				shred(ev)
			}
			continue
		}
		plain, err := openBlob(keys[u], b, entryAD(u, ev.Record.Version))
		if errors.Is(err, errShredded) {
			ev.Shredded = true
			continue
		}
		var sec entrySecret
		if err == nil {
			err = json.Unmarshal(plain, &sec)
		}
		if err != nil || sec.Record.UserID != u || sec.Record.Version != ev.Record.Version || sec.Record.LastHash != ev.Receipt.Hash {
			return &store.TrimmedError{Log: ev.Log, Next: ev.Pos}
		}
		rec := sec.Record
		rec.Number = ev.Record.Number
		prev, ok := sec.prev(&rec)
		if !ok {
			return &store.TrimmedError{Log: ev.Log, Next: ev.Pos}
		}
		ev.Record, ev.Prev = &rec, &prev
		sec.Rc.restore(&ev.Receipt)
	}
	return nil
}

// shred strips an entry written whole (before sealing existed) of its
// content: an erase entry keeps its tombstone without the suppressions the
// previous release kept, any other entry of an erased user is Shredded.
func shred(ev *store.Event) {
	r := ev.Record
	ev.Prev = nil
	ev.Receipt = ev.Receipt.Redact()
	if r.State.Erased {
		t := *r
		t.Tags = tags.Set{}
		ev.Record = &t
		return
	}
	ev.Record = &consent.Record{UserID: r.UserID, Number: r.Number, Version: r.Version, LastHash: r.LastHash}
	ev.Shredded = true
}

// scrubLegacy removes what a release before sealing kept in clear about an
// erased user: the suppressions its tombstone kept, the receipt items
// (rewritten redacted), the changelog entries (fields r and p in clear) and
// the outcome events (field e) naming the user. Deleting changelog entries
// leaves holes: a reader that had not read past them is told (ErrTrimmed)
// and rebuilds from the records, which is what it must do anyway after an
// erasure it has not seen. It scans the shard's streams, so it runs only
// for users whose history predates sealing.
func (s *Store) scrubLegacy(ctx context.Context, shard int, user string) error {
	if err := s.scrubUser(ctx, shard, user); err != nil {
		return err
	}
	return s.scrubStreams(ctx, shard, map[string]bool{user: true})
}

// scrubUser rewrites an erased user's tombstone without suppressions and
// their receipt items redacted, each only if unchanged since read.
func (s *Store) scrubUser(ctx context.Context, shard int, user string) error {
	ukey := s.k.user(shard, user)
	vals, err := s.c.HMGet(ctx, ukey, "v", "d").Result()
	if err != nil {
		return unavailable(err)
	}
	if v, _ := vals[0].(string); v != "" {
		d, _ := vals[1].(string)
		var rec consent.Record
		if json.Unmarshal([]byte(d), &rec) == nil && rec.State.Erased && (len(rec.Tags.Entries) > 0 || len(rec.Tags.Suppressed) > 0) {
			rec.Tags = tags.Set{}
			rec.Number = 0
			b, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			if err := setRecordScript.Run(ctx, s.c, []string{ukey}, v, b).Err(); err != nil {
				return unavailable(err)
			}
		}
	}
	rkey := s.k.receipts(shard, user)
	for attempt := 0; attempt < s.tries; attempt++ {
		items, err := s.c.LRange(ctx, rkey, 0, -1).Result()
		if err != nil {
			return unavailable(err)
		}
		if !hasWholeItems(items) {
			return nil
		}
		out, err := redactItems(user, items)
		if err != nil {
			return err
		}
		n, err := rewriteListScript.Run(ctx, s.c, []string{rkey}, append([]any{len(items)}, out...)...).Int()
		if err != nil {
			return unavailable(err)
		}
		if n >= 0 {
			return nil
		}
		backoff(attempt)
	}
	return fmt.Errorf("%w: receipts of %q changed concurrently during the scrub", store.ErrConflict, user)
}

// scrubStreams deletes the changelog entries written whole and the outcome
// events written whole (before sealing) of users, in one pass over each of
// the shard's streams.
func (s *Store) scrubStreams(ctx context.Context, shard int, users map[string]bool) error {
	names := map[string]func(m goredis.XMessage) bool{
		s.k.log(shard): func(m goredis.XMessage) bool {
			if _, current := m.Values["u"]; current {
				return false // written by this release: sealed, or a tombstone
			}
			for _, f := range []string{"r", "p"} {
				if v, _ := m.Values[f].(string); v != "" {
					var r struct {
						UserID string `json:"user_id"`
					}
					if json.Unmarshal([]byte(v), &r) == nil && users[r.UserID] {
						return true
					}
				}
			}
			return false
		},
		s.k.outcomes(shard): func(m goredis.XMessage) bool {
			u, x, _ := outcomeFields(m)
			return users[u] && x == ""
		},
	}
	for key, match := range names {
		start := "-"
		for {
			msgs, err := s.c.XRangeN(ctx, key, start, "+", 1000).Result()
			if err != nil {
				return unavailable(err)
			}
			var del []string
			for _, m := range msgs {
				if match(m) {
					del = append(del, m.ID)
				}
			}
			if len(del) > 0 {
				if err := s.c.XDel(ctx, key, del...).Err(); err != nil {
					return unavailable(err)
				}
			}
			if len(msgs) < 1000 {
				break
			}
			start = "(" + msgs[len(msgs)-1].ID
		}
	}
	return nil
}

// ScrubErased removes what a release before sealing kept in clear about
// the users it erased (see scrubLegacy), shard by shard: run it once after
// upgrading a keyspace written by such a release (recguard serve does, in
// the background, at start). It returns how many users it scrubbed. Users
// erased by this release need nothing: their data key went with them.
func (s *Store) ScrubErased(ctx context.Context) (int, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	total := 0
	for shard := 0; shard < s.shards; shard++ {
		found := map[string]bool{}
		for from := 1; ; from += 500 {
			ids, err := s.ListUsers(ctx, shard, from, 500)
			if err != nil {
				return total, err
			}
			if len(ids) > 0 {
				recs, err := s.GetMany(ctx, ids)
				if err != nil && store.Corrupted(err) == nil {
					return total, err
				}
				for _, r := range recs {
					if !r.State.Erased {
						continue
					}
					if err := s.scrubUser(ctx, shard, r.UserID); err != nil {
						return total, err
					}
					found[r.UserID] = true
				}
			}
			if len(ids) < 500 {
				break
			}
		}
		if len(found) > 0 {
			if err := s.scrubStreams(ctx, shard, found); err != nil {
				return total, err
			}
			total += len(found)
		}
	}
	return total, nil
}

// hasWholeItems reports whether receipt items include one written whole,
// before sealing existed.
func hasWholeItems(items []string) bool {
	for _, it := range items {
		if _, rest, ok := strings.Cut(it, " "); ok && strings.HasPrefix(rest, "{") {
			return true
		}
	}
	return false
}

// redactItems returns user's receipt items rewritten as "<ms> - <redacted
// JSON>": no sealed part, no personal field (what an erasure keeps).
func redactItems(user string, items []string) ([]any, error) {
	out := make([]any, 0, len(items))
	for _, it := range items {
		rc, _, err := decodeReceiptItem(it)
		if err != nil {
			return nil, &store.CorruptError{UserIDs: []string{user}, Detail: "a receipt item does not decode"}
		}
		ms, _, _ := strings.Cut(it, " ")
		b, err := json.Marshal(rc.Redact())
		if err != nil {
			return nil, err
		}
		out = append(out, ms+" - "+string(b))
	}
	return out, nil
}
