package memory

import "errors"

// Errors of the embedded store, besides the store package's sentinels.
var (
	// ErrCorrupt reports an append-only file that cannot be replayed: a
	// damaged line followed by more data, or a line that does not fit the
	// state before it. Open never skips such a line.
	ErrCorrupt = errors.New("memory: data file corrupt")
	// ErrLocked reports a data directory already in use by another open
	// Store, in this process or another.
	ErrLocked = errors.New("memory: data directory in use")
	// ErrInvalidOptions reports Options that do not validate, or a shard
	// count that differs from the one kept in the data directory.
	ErrInvalidOptions = errors.New("memory: invalid options")
)
