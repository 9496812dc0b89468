package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"runtime/debug"
)

// Provenance says what was audited, with what and by whom, so that a report
// can be tied to its inputs: a regulator holding the same files can check
// their SHA-256.
type Provenance struct {
	// Version is recguard's module version and VCS revision.
	Version string `json:"version"`
	// RunBy names who ran the audit: an API key ID over HTTP, "cli" for
	// recguard audit.
	RunBy string `json:"run_by,omitempty"`
	// Inputs are the files (or store reads) the events and users came
	// from.
	Inputs []Input `json:"inputs"`
}

// Input is one input of an audit.
type Input struct {
	// Kind is events or users; Name the file's path or "store".
	Kind string `json:"kind"`
	Name string `json:"name"`
	// SHA256 and Bytes fingerprint a file read whole; empty for a store
	// read, which Detail describes instead.
	SHA256 string `json:"sha256,omitempty"`
	Bytes  int64  `json:"bytes,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Version returns recguard's version as the binary knows it: the module
// version and the VCS revision (with "+dirty" for uncommitted changes),
// "devel" when built without module information.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	v := bi.Main.Version
	if v == "" {
		v = "devel"
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		v += " (" + rev + dirty + ")"
	}
	return v
}

// FingerprintReader wraps r so that every byte read is hashed: Input then
// gives the fingerprint of what was read (call it once reading is done).
type FingerprintReader struct {
	r    io.Reader
	h    hash.Hash
	n    int64
	kind string
	name string
}

// NewFingerprintReader returns a FingerprintReader of r for an input of
// kind (events, users) named name.
func NewFingerprintReader(r io.Reader, kind, name string) *FingerprintReader {
	return &FingerprintReader{r: r, h: sha256.New(), kind: kind, name: name}
}

// Read reads from the wrapped reader and hashes what it read.
func (f *FingerprintReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	f.h.Write(p[:n])
	f.n += int64(n)
	return n, err
}

// Input is the fingerprint of everything read so far.
func (f *FingerprintReader) Input() Input {
	return Input{Kind: f.kind, Name: f.name, SHA256: hex.EncodeToString(f.h.Sum(nil)), Bytes: f.n}
}
