package memory

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

var (
	_ store.KeyStore  = (*Store)(nil)
	_ store.RightsLog = (*Store)(nil)
)

// Files of the API keys and the rights log in the data directory.
const (
	keysName    = "keys.json"     // every key, a JSON array sorted by ID
	keysTmpName = "keys.json.tmp" // the next keys.json being written
	rightsName  = "rights.jsonl"  // one JSON rights request per line, in the order logged
)

// maxKeyIDLen bounds an API key's ID.
const maxKeyIDLen = 64

// abilities holds the API keys and the rights log. They are kept apart
// from the data file: with a data directory the keys are rewritten whole
// into keys.json on every change, and rights requests are appended to
// rights.jsonl.
//
// As for a shard, wmu serializes the writers and is held during the file
// I/O; mu guards the data against readers and is taken exclusively only to
// publish a change that was written, so reads never wait for a sync.
type abilities struct {
	dir    string // "" without a data directory
	noSync bool

	keysWmu sync.Mutex
	keysMu  sync.RWMutex
	keys    map[string]store.APIKey

	rightsWmu sync.Mutex
	rightsMu  sync.RWMutex
	rights    []store.RightsRequest
	rf        *os.File // rights.jsonl open for appending; nil until first needed
	rsize     int64    // bytes of good lines in rf
	rerr      error    // sticky: rights.jsonl may end with a partial line
}

func newAbilities(dir string, noSync bool) *abilities {
	return &abilities{dir: dir, noSync: noSync, keys: map[string]store.APIKey{}}
}

// loadAbilities reads the keys and the rights log kept in dir. A keys.json
// that cannot be read as keys, or a damaged rights.jsonl line followed by
// more data, is an error wrapping ErrCorrupt; a damaged last line of
// rights.jsonl (an append cut short) is dropped and the file truncated.
func loadAbilities(dir string, noSync bool) (*abilities, error) {
	a := newAbilities(dir, noSync)
	if err := os.Remove(filepath.Join(dir, keysTmpName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, unavailable(err)
	}
	if err := a.loadKeys(); err != nil {
		return nil, err
	}
	if err := a.loadRights(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *abilities) loadKeys() error {
	path := filepath.Join(a.dir, keysName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return unavailable(err)
	}
	var list []store.APIKey
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	for _, k := range list {
		if err := validKey(k); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
		}
		if _, dup := a.keys[k.ID]; dup {
			return fmt.Errorf("%w: %s: key %q twice", ErrCorrupt, path, k.ID)
		}
		a.keys[k.ID] = k
	}
	return nil
}

func (a *abilities) loadRights() error {
	path := filepath.Join(a.dir, rightsName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0o600)
	if errors.Is(err, os.ErrNotExist) {
		return nil // created on the first append
	}
	if err != nil {
		return unavailable(err)
	}
	good, torn, err := a.readRights(f)
	if err == nil && torn {
		if err = f.Truncate(good); err == nil {
			err = f.Sync()
		}
		if err != nil {
			err = unavailable(err)
		}
	}
	if err != nil {
		f.Close()
		return err
	}
	a.rf, a.rsize = f, good
	return nil
}

// readRights reads the rights log from f and returns the bytes of its good
// lines and whether a damaged last line follows them.
func (a *abilities) readRights(f *os.File) (good int64, torn bool, err error) {
	r := bufio.NewReaderSize(f, 1<<16)
	for n := 1; ; n++ {
		b, rerr := r.ReadBytes('\n')
		if rerr != nil && rerr != io.EOF {
			return 0, false, unavailable(rerr)
		}
		if len(b) == 0 {
			return good, false, nil
		}
		if rerr == io.EOF { // no end of line: an append cut short
			return good, true, nil
		}
		var rq store.RightsRequest
		if err := json.Unmarshal(b, &rq); err != nil {
			if atEOF(r) {
				return good, true, nil
			}
			return 0, false, fmt.Errorf("%w: %s: line %d at byte %d: %v (and it is not the last line)", ErrCorrupt, f.Name(), n, good, err)
		}
		if err := rq.Validate(); err != nil {
			return 0, false, fmt.Errorf("%w: %s: line %d at byte %d: %v", ErrCorrupt, f.Name(), n, good, err)
		}
		a.rights = append(a.rights, rq)
		good += int64(len(b))
	}
}

// close waits for the writes in flight and closes rights.jsonl.
func (a *abilities) close() error {
	a.keysWmu.Lock()
	defer a.keysWmu.Unlock()
	a.rightsWmu.Lock()
	defer a.rightsWmu.Unlock()
	if a.rf == nil {
		return nil
	}
	var err error
	if a.noSync && a.rerr == nil {
		err = a.rf.Sync()
	}
	if e := a.rf.Close(); err == nil {
		err = e
	}
	a.rf = nil
	return err
}

// ---- validation ----

func invalid(field, format string, args ...any) error {
	return &consent.FieldError{Field: field, Detail: fmt.Sprintf(format, args...), Err: consent.ErrInvalidChange}
}

// validKeyID checks an API key's ID: 1 to 64 bytes of [a-z0-9].
func validKeyID(id string) error {
	if len(id) == 0 || len(id) > maxKeyIDLen {
		return invalid("id", "key ID of %d bytes, want 1 to %d", len(id), maxKeyIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return invalid("id", "key ID %q: want only a-z and 0-9", id)
		}
	}
	return nil
}

// validKey checks a key before it is stored: a valid ID and a role.
func validKey(k store.APIKey) error {
	if err := validKeyID(k.ID); err != nil {
		return err
	}
	if k.Role == "" {
		return invalid("role", "empty role")
	}
	return nil
}

// ---- KeyStore ----

// PutKey creates or replaces the key with k.ID. With a data directory all
// the keys are written to a temporary file, synced and renamed over
// keys.json, and the directory synced, before the change is visible. An
// I/O error wraps store.ErrUnavailable and changes nothing, except when
// only the final directory sync fails: the key is then stored, and may or
// may not survive a crash of the machine.
func (s *Store) PutKey(ctx context.Context, k store.APIKey) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if err := validKey(k); err != nil {
		return err
	}
	k.CreatedAt, k.RevokedAt = k.CreatedAt.Round(0), k.RevokedAt.Round(0)
	a := s.ab
	a.keysWmu.Lock()
	defer a.keysWmu.Unlock()
	if s.closed.Load() {
		return store.ErrClosed
	}
	var err error
	if a.dir != "" {
		list := make([]store.APIKey, 0, len(a.keys)+1)
		for id, old := range a.keys {
			if id != k.ID {
				list = append(list, old)
			}
		}
		list = append(list, k)
		sortKeys(list)
		if err = writeKeys(a.dir, list); err != nil && !errors.Is(err, errDirSync) {
			return unavailable(err)
		}
	}
	a.keysMu.Lock()
	a.keys[k.ID] = k
	a.keysMu.Unlock()
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// errDirSync marks a failed sync of the directory after a rename.
var errDirSync = errors.New("sync of the data directory failed")

// writeKeys replaces keys.json in dir by list, through a synced temporary
// file renamed into place.
func writeKeys(dir string, list []store.APIKey) error {
	b, err := json.MarshalIndent(list, "", "\t")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	tmp := filepath.Join(dir, keysTmpName)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, keysName))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("%w: %w", errDirSync, err)
	}
	return nil
}

func sortKeys(ks []store.APIKey) {
	slices.SortFunc(ks, func(a, b store.APIKey) int { return strings.Compare(a.ID, b.ID) })
}

// GetKey returns the key with id, or an error wrapping store.ErrNotFound.
func (s *Store) GetKey(ctx context.Context, id string) (store.APIKey, error) {
	if err := s.check(ctx); err != nil {
		return store.APIKey{}, err
	}
	if err := validKeyID(id); err != nil {
		return store.APIKey{}, err
	}
	a := s.ab
	a.keysMu.RLock()
	k, ok := a.keys[id]
	a.keysMu.RUnlock()
	if !ok {
		return store.APIKey{}, fmt.Errorf("%w: key %q", store.ErrNotFound, id)
	}
	return k, nil
}

// ListKeys returns every key, revoked ones included, sorted by ID.
func (s *Store) ListKeys(ctx context.Context) ([]store.APIKey, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	a := s.ab
	a.keysMu.RLock()
	out := make([]store.APIKey, 0, len(a.keys))
	for _, k := range a.keys {
		out = append(out, k)
	}
	a.keysMu.RUnlock()
	sortKeys(out)
	return out, nil
}

// ---- RightsLog ----

// LogRightsRequest appends r. With a data directory it is appended as one
// JSON line to rights.jsonl and synced (unless Options.NoSync) before it is
// visible. An I/O error wraps store.ErrUnavailable and logs nothing.
func (s *Store) LogRightsRequest(ctx context.Context, r store.RightsRequest) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if err := r.Validate(); err != nil {
		return err
	}
	r.Received, r.Handled = r.Received.Round(0), r.Handled.Round(0)
	a := s.ab
	a.rightsWmu.Lock()
	defer a.rightsWmu.Unlock()
	if s.closed.Load() {
		return store.ErrClosed
	}
	if a.dir != "" {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := a.appendRights(append(b, '\n')); err != nil {
			return unavailable(err)
		}
	}
	a.rightsMu.Lock()
	a.rights = append(a.rights, r)
	a.rightsMu.Unlock()
	return nil
}

// appendRights appends one line to rights.jsonl, creating it on first use,
// and syncs it. A failed append is cut off the file again; when that fails
// too, every further append fails. The caller holds rightsWmu.
func (a *abilities) appendRights(b []byte) error {
	if a.rerr != nil {
		return a.rerr
	}
	if a.rf == nil {
		f, err := os.OpenFile(filepath.Join(a.dir, rightsName), os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		if err := syncDir(a.dir); err != nil {
			f.Close()
			return err
		}
		a.rf, a.rsize = f, 0
	}
	n, err := a.rf.Write(b)
	if err == nil && !a.noSync {
		err = a.rf.Sync()
	}
	if err != nil {
		if terr := a.rf.Truncate(a.rsize); terr != nil {
			a.rerr = fmt.Errorf("append to %s: %w (and cutting it off failed: %v)", rightsName, err, terr)
			return a.rerr
		}
		return fmt.Errorf("append to %s: %w", rightsName, err)
	}
	a.rsize += int64(n)
	return nil
}

// RightsRequests returns the requests received in [from, to), oldest first
// (requests received at the same time in the order they were logged).
func (s *Store) RightsRequests(ctx context.Context, from, to time.Time) ([]store.RightsRequest, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	out := []store.RightsRequest{}
	if !from.Before(to) {
		return out, nil
	}
	a := s.ab
	a.rightsMu.RLock()
	for _, r := range a.rights {
		if !r.Received.Before(from) && r.Received.Before(to) {
			out = append(out, r)
		}
	}
	a.rightsMu.RUnlock()
	slices.SortStableFunc(out, func(a, b store.RightsRequest) int { return a.Received.Compare(b.Received) })
	return out, nil
}
