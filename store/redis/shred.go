package redis

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
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

// sealBlob encrypts plain under key; the result is base64 (no spaces).
func sealBlob(key, plain []byte) string {
	aead := mustAEAD(key)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	return base64.RawStdEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, nil))
}

// errShredded reports sealed content whose key is gone (or another key).
var errShredded = errors.New("sealed content: key gone")

// openBlob decrypts a sealBlob result under key.
func openBlob(key []byte, blob string) ([]byte, error) {
	if len(key) != dataKeyLen {
		return nil, errShredded
	}
	raw, err := base64.RawStdEncoding.DecodeString(blob)
	if err != nil {
		return nil, fmt.Errorf("sealed content: %w", err)
	}
	aead := mustAEAD(key)
	if len(raw) < aead.NonceSize()+aead.Overhead() {
		return nil, errShredded
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], nil)
	if err != nil {
		return nil, errShredded
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

// entrySecret is the sealed payload of a changelog entry.
type entrySecret struct {
	Record consent.Record `json:"r"`
	Prev   consent.Record `json:"p"`
	Rc     receiptSecret  `json:"c"`
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

// userKeys reads the data key and status of users (valid IDs) in one
// pipelined round trip. A user with no key gets nil.
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
				cmds[id] = p.HMGet(ctx, s.k.user(store.ShardOf(id, s.shards), id), "k", "st")
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, nil, unavailable(err)
	}
	for id, c := range cmds {
		v := c.Val()
		if len(v) == 2 {
			if k, ok := v[0].(string); ok && len(k) == dataKeyLen {
				keys[id] = []byte(k)
			}
			st, _ := v[1].(string)
			status[id] = st
		}
	}
	return keys, status, nil
}

// applyArgs returns applyScript's ARGV for the change from rec to next with
// receipt rc, under the user's data key dk as read (nil: none yet).
func (s *Store) applyArgs(rec, next consent.Record, rc *consent.Receipt, ver string, dk []byte, shard int) ([]any, error) {
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
	mode := "have"
	var fields []any
	blob := "-"
	if next.State.Erased {
		// The erasure destroys the key: the entry and the receipt carry
		// the tombstone and the redacted receipt only.
		mode, dk = "drop", nil
		fields = []any{"u", next.UserID, "v", next.Version, "c", redJSON, "r", recJSON}
	} else {
		if dk == nil {
			mode, dk = "new", newDataKey()
		}
		sec, err := json.Marshal(entrySecret{Record: next, Prev: rec, Rc: secretOf(rc)})
		if err != nil {
			return nil, err
		}
		rsec, err := json.Marshal(secretOf(rc))
		if err != nil {
			return nil, err
		}
		blob = sealBlob(dk, rsec)
		fields = []any{"u", next.UserID, "v", next.Version, "c", redJSON, "x", sealBlob(dk, sec)}
	}
	item := strconv.FormatInt(atMS, 10) + " " + blob + " " + string(redJSON)
	args := []any{ver, next.Version, recJSON, item, atMS, s.maxLen, next.UserID, s.shards, shard, s.epoch, string(dk), mode, statusOf(next)}
	return append(args, fields...), nil
}

// decodeReceiptItem decodes one receipts-list item: "<ms> <blob> <JSON>"
// (a user's receipt: the redacted receipt and its sealed personal part, "-"
// for none) or "<ms> <JSON>" (a settings receipt, kept whole). It returns
// the receipt and the blob.
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

// openReceipt puts the personal part of rc back from blob under dk. When
// the key is gone (the user was erased) rc stays redacted.
func openReceipt(rc *consent.Receipt, blob string, dk []byte) error {
	if blob == "" || blob == "-" {
		return nil
	}
	plain, err := openBlob(dk, blob)
	if errors.Is(err, errShredded) {
		return nil
	}
	if err != nil {
		return err
	}
	var sec receiptSecret
	if err := json.Unmarshal(plain, &sec); err != nil {
		return fmt.Errorf("receipt secret: %w", err)
	}
	sec.restore(rc)
	return nil
}

// openEvents completes events whose content is sealed (blobs[i] != ""):
// with the user's data key it fills Record, Prev and the receipt's personal
// fields; without (the user was erased since) it marks the event Shredded.
func (s *Store) openEvents(ctx context.Context, evs []store.Event, blobs []string) error {
	var users []string
	for i, b := range blobs {
		if b != "" {
			users = append(users, evs[i].Record.UserID)
		}
	}
	if len(users) == 0 {
		return nil
	}
	keys, _, err := s.userKeys(ctx, users)
	if err != nil {
		return err
	}
	for i, b := range blobs {
		if b == "" {
			continue
		}
		ev := &evs[i]
		plain, err := openBlob(keys[ev.Record.UserID], b)
		if errors.Is(err, errShredded) {
			ev.Shredded = true
			continue
		}
		if err != nil {
			return &store.TrimmedError{Log: ev.Log, Next: ev.Pos}
		}
		var sec entrySecret
		if err := json.Unmarshal(plain, &sec); err != nil {
			return &store.TrimmedError{Log: ev.Log, Next: ev.Pos}
		}
		num := ev.Record.Number
		rec, prev := sec.Record, sec.Prev
		rec.Number, prev.Number = num, num
		ev.Record, ev.Prev = &rec, &prev
		sec.Rc.restore(&ev.Receipt)
	}
	return nil
}
