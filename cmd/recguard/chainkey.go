package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/recguard/recguard/consent"
)

// The receipt chain key (consent.ChainKey) seals every receipt the store
// writes: whoever can write the store but does not hold the key cannot
// rebuild a chain that verifies. It is a deployment secret kept outside
// the store, the same for every instance of a deployment.
//
// Where it comes from, in this order (at most one may be given):
//
//   - --chain-key HEX (RECGUARD_CHAIN_KEY): the key's bytes in hex; prefer
//     the variable to the flag, which others can see in ps;
//   - --chain-key-file FILE (RECGUARD_CHAIN_KEY_FILE): the key is the
//     file's bytes, as they are; the file must be readable by its owner
//     only;
//   - --unkeyed-chain: no key (a store made before chain keys, whose
//     chains are unkeyed, keeps them so);
//   - none: the embedded store keeps it in <data dir>/chain.key, made (32
//     random bytes, mode 0600) together with a new store. A Redis store
//     needs one of the above for serve: every instance needs the same key,
//     so no instance can make one on its own.
//
// The key is at least consent.MinChainKeyLen bytes. It is never logged.

// chainKeyName is the key file's name in the embedded store's directory.
const chainKeyName = "chain.key"

// memoryDataFile is the embedded store's data file (store/memory): the
// store exists once it does.
const memoryDataFile = "recguard.aof"

// newChainKeyLen is the length of a key recguard makes.
const newChainKeyLen = 32

// maxChainKeyLen bounds a key file read: a longer file is not a key.
const maxChainKeyLen = 4096

// registerChainKey adds the chain key flags to fs.
func (sf *storeFlags) registerChainKey(set *flag.FlagSet) {
	set.StringVar(&sf.chainKeyHex, "chain-key", "", "the receipt chain key in hex (prefer RECGUARD_CHAIN_KEY: a flag shows in ps)")
	set.StringVar(&sf.chainKeyFile, "chain-key-file", "", "file holding the receipt chain key (default <data dir>/chain.key for the embedded store)")
	set.BoolVar(&sf.unkeyed, "unkeyed-chain", false, "seal receipts without a chain key (only for a store made before chain keys)")
}

// chainKey resolves the receipt chain key of the store sf names for the
// command cmd. A missing embedded key is made when the store is new, by the
// commands that create a store (serve, keys): the key is made with its
// store. serve and verify, which seal or check receipts, refuse to run
// without a key they can find; keys and audit, which do neither, open the
// store without one when none is configured.
func (sf *storeFlags) chainKey(cmd string, log *slog.Logger) (consent.ChainKey, error) {
	creates := cmd == "serve" || cmd == "keys"
	needs := cmd == "serve" || cmd == "verify"
	given := 0
	for _, b := range []bool{sf.chainKeyHex != "", sf.chainKeyFile != "", sf.unkeyed} {
		if b {
			given++
		}
	}
	if given > 1 {
		return nil, errors.New("give one of --chain-key (RECGUARD_CHAIN_KEY), --chain-key-file (RECGUARD_CHAIN_KEY_FILE) and --unkeyed-chain")
	}
	embedded := sf.redisURL == "" && sf.cluster == ""
	switch {
	case sf.unkeyed:
		log.Warn("receipt chains are unkeyed (--unkeyed-chain): whoever can write the store can rebuild a chain that verifies; use it only for a store made before chain keys")
		return nil, nil
	case sf.chainKeyHex != "":
		k, err := hex.DecodeString(strings.TrimSpace(sf.chainKeyHex))
		if err != nil {
			// Never echo the value: it is (most of) a secret.
			return nil, errors.New("--chain-key (RECGUARD_CHAIN_KEY): not hex: give the key's bytes as hex digits")
		}
		if len(k) < consent.MinChainKeyLen {
			return nil, fmt.Errorf("--chain-key (RECGUARD_CHAIN_KEY): %d bytes; a chain key needs at least %d (make one: openssl rand -hex %d)", len(k), consent.MinChainKeyLen, newChainKeyLen)
		}
		return k, nil
	case sf.chainKeyFile != "":
		k, err := readChainKey(sf.chainKeyFile)
		if errors.Is(err, fs.ErrNotExist) && embedded && creates && !storeExists(sf.data) {
			return makeChainKey(sf.chainKeyFile, log)
		}
		return k, err
	case !embedded:
		if !needs {
			return nil, nil
		}
		return nil, fmt.Errorf("a Redis store needs the receipt chain key every instance shares: give --chain-key-file FILE (RECGUARD_CHAIN_KEY_FILE), "+
			"or the key in hex in RECGUARD_CHAIN_KEY (--chain-key); make one with: openssl rand -hex %d", newChainKeyLen)
	}
	path := filepath.Join(sf.data, chainKeyName)
	k, err := readChainKey(path)
	switch {
	case err == nil:
		return k, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	case creates && !storeExists(sf.data):
		return makeChainKey(path, log)
	case !needs:
		return nil, nil
	}
	return nil, fmt.Errorf("the embedded store in %s has no receipt chain key (%s is missing): "+
		"if it had one, restore the file from your backup (without it no receipt chain verifies); "+
		"if the store was made before chain keys and has recorded changes, start with --unkeyed-chain to keep its unkeyed chains; "+
		"if it never recorded a change, make the key: head -c %d /dev/urandom > %s && chmod 600 %s",
		sf.data, path, newChainKeyLen, path, path)
}

// storeExists reports whether dir holds an embedded store.
func storeExists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, memoryDataFile))
	return err == nil
}

// readChainKey reads a key file: a regular file, readable by its owner
// only, of at least consent.MinChainKeyLen bytes.
func readChainKey(path string) (consent.ChainKey, error) {
	return readSecretFile(path, "chain key", "forge receipt chains that verify")
}

// readSecretFile reads the secret what (a "chain key", a "decision
// secret") from path: a regular file, readable by its owner only (whoever
// else reads it can do risk), of consent.MinChainKeyLen to maxChainKeyLen
// bytes, taken as they are.
func readSecretFile(path, what, risk string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s file: %w", what, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s file: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s file %s is not a regular file", what, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("%s file %s has mode %04o: its group or others can read or change it, and whoever reads the key can %s; "+
			"make it the owner's only: chmod 600 %s", what, path, perm, risk, path)
	}
	k, err := io.ReadAll(io.LimitReader(f, maxChainKeyLen+1))
	if err != nil {
		return nil, fmt.Errorf("%s file: %w", what, err)
	}
	switch {
	case len(k) > maxChainKeyLen:
		return nil, fmt.Errorf("%s file %s holds over %d bytes: not a key", what, path, maxChainKeyLen)
	case len(k) < consent.MinChainKeyLen:
		return nil, fmt.Errorf("%s file %s holds %d bytes; a %s needs at least %d (the key is the file's bytes, as they are)", what, path, len(k), what, consent.MinChainKeyLen)
	}
	return k, nil
}

// makeChainKey writes a new key of newChainKeyLen random bytes to path
// (mode 0600; its directory made 0700 when missing) and returns it. The
// file appears complete or not at all; when another process made it
// first, that key is read and returned.
func makeChainKey(path string, log *slog.Logger) (consent.ChainKey, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("chain key: %w", err)
	}
	k := make([]byte, newChainKeyLen)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("chain key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, chainKeyName+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("chain key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("chain key: %w", err)
	}
	if _, err := tmp.Write(k); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("chain key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("chain key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("chain key: %w", err)
	}
	// A hard link fails when path exists: no key is ever replaced.
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return readChainKey(path)
	} else if err != nil {
		return nil, fmt.Errorf("chain key: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	log.Info("made a new receipt chain key: back it up with the data (without it no receipt chain verifies)", "file", path, "bytes", newChainKeyLen)
	return k, nil
}
