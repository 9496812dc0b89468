package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store/memory"
)

// TestChainKey: where the receipt chain key comes from, and what is
// refused: a key made with a new embedded store (0600, its directory 0700)
// and read back after; a file others can read; a short key; bad hex
// (never echoed); two sources at once; a Redis store without a key (serve
// only); an existing store whose key file is missing (serve refuses, keys
// and audit go on without a key; --unkeyed-chain runs it unkeyed).
func TestChainKey(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	dir := t.TempDir()

	// A new embedded store: the key is made, in a directory made 0700.
	data := filepath.Join(dir, "new", "data")
	sf := storeFlags{data: data}
	k, err := sf.chainKey("keys", log)
	if err != nil || len(k) != 32 {
		t.Fatalf("new store: %d bytes, %v", len(k), err)
	}
	path := filepath.Join(data, chainKeyName)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	if di, err := os.Stat(data); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("data dir: %v %v", di, err)
	}
	if !strings.Contains(logs.String(), "made a new receipt chain key") || strings.Contains(logs.String(), hex.EncodeToString(k)) {
		t.Errorf("log: %s", logs.String())
	}
	// Read back, whoever asks; no temporary file left behind.
	for _, cmd := range []string{"serve", "keys", "audit"} {
		if again, err := sf.chainKey(cmd, log); err != nil || !bytes.Equal(again, k) {
			t.Errorf("%s: the key read back differs (%v)", cmd, err)
		}
	}
	if ents, _ := os.ReadDir(data); len(ents) != 1 {
		t.Errorf("data dir holds %v", ents)
	}

	refused := func(what string, sf storeFlags, cmd string, want ...string) {
		t.Helper()
		_, err := sf.chainKey(cmd, log)
		if err == nil {
			t.Errorf("%s: accepted", what)
			return
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q, want it to say %q", what, err, w)
			}
		}
	}
	// A key file its group or others can read is refused, and says why.
	loose := filepath.Join(dir, "loose.key")
	if err := os.WriteFile(loose, bytes.Repeat([]byte{1}, 32), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	refused("a key file others can read", storeFlags{data: data, chainKeyFile: loose}, "serve", "0644", "forge", "chmod 600")
	os.Chmod(loose, 0o640)
	refused("a key file its group can read", storeFlags{data: data, chainKeyFile: loose}, "serve", "0640")
	os.Chmod(loose, 0o600)
	if got, err := (&storeFlags{data: data, chainKeyFile: loose}).chainKey("serve", log); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{1}, 32)) {
		t.Errorf("the key file, once 0600: %v", err)
	}
	// Too short, as a file or in hex.
	short := filepath.Join(dir, "short.key")
	os.WriteFile(short, make([]byte, consent.MinChainKeyLen-1), 0o600)
	refused("a short key file", storeFlags{data: data, chainKeyFile: short}, "serve", "15 bytes", "at least 16")
	refused("a short hex key", storeFlags{data: data, chainKeyHex: "00112233"}, "serve", "4 bytes", "at least 16")
	// Not hex: refused without echoing the value.
	secretish := "zz" + strings.Repeat("ab", 20)
	_, err = (&storeFlags{data: data, chainKeyHex: secretish}).chainKey("serve", log)
	if err == nil || strings.Contains(err.Error(), "zz") || strings.Contains(err.Error(), "'z'") || strings.Contains(err.Error(), "abab") {
		t.Errorf("bad hex: %v", err)
	}
	if hk, err := (&storeFlags{data: data, chainKeyHex: strings.Repeat("ab", 16)}).chainKey("serve", log); err != nil || len(hk) != 16 {
		t.Errorf("a 16-byte hex key: %v", err)
	}
	// One source at most.
	refused("two sources", storeFlags{data: data, chainKeyHex: strings.Repeat("ab", 16), chainKeyFile: loose}, "serve", "give one of")
	refused("unkeyed and a key", storeFlags{data: data, chainKeyHex: strings.Repeat("ab", 16), unkeyed: true}, "serve", "give one of")
	// Redis: serve needs a key; keys and audit go without one.
	redis := storeFlags{redisURL: "redis://127.0.0.1:1/0"}
	refused("Redis without a key", redis, "serve", "--chain-key-file", "RECGUARD_CHAIN_KEY", "every instance")
	refused("verify on Redis without a key", redis, "verify", "--chain-key-file")
	if k, err := redis.chainKey("keys", log); err != nil || k != nil {
		t.Errorf("keys on Redis without a key: %v %v", k, err)
	}
	redis.chainKeyFile = filepath.Join(dir, "nope.key")
	refused("Redis with a key file that is not there", redis, "serve", "no such file")

	// An existing store whose key file is gone.
	old := filepath.Join(dir, "old")
	ms, err := memory.Open(context.Background(), memory.Options{Dir: old, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ms.Close()
	refused("an existing store without its key", storeFlags{data: old}, "serve", "restore the file", "--unkeyed-chain")
	refused("verify of a store without its key", storeFlags{data: old}, "verify", "restore the file")
	// audit and verify never make a key (nor a store).
	for _, cmd := range []string{"audit", "verify"} {
		nd := filepath.Join(dir, "none-"+cmd)
		if k, _ := (&storeFlags{data: nd}).chainKey(cmd, log); k != nil {
			t.Errorf("%s made a key", cmd)
		}
		if _, err := os.Stat(nd); err == nil {
			t.Errorf("%s made %s", cmd, nd)
		}
	}
	// An explicit file that is not there, for a store that exists.
	refused("a missing key file", storeFlags{data: old, chainKeyFile: filepath.Join(dir, "nope.key")}, "serve", "no such file")
	// For a new store the file named is made.
	made := filepath.Join(dir, "made", "chain.key")
	if k, err := (&storeFlags{data: filepath.Join(dir, "new2"), chainKeyFile: made}).chainKey("serve", log); err != nil || len(k) != 32 {
		t.Errorf("--chain-key-file for a new store: %v", err)
	}
	for _, cmd := range []string{"keys", "audit"} {
		if k, err := (&storeFlags{data: old}).chainKey(cmd, log); err != nil || k != nil {
			t.Errorf("%s on a store without its key: %v %v", cmd, k, err)
		}
	}
	if _, err := os.Stat(filepath.Join(old, chainKeyName)); err == nil {
		t.Error("a key was made for an existing store")
	}
	logs.Reset()
	if k, err := (&storeFlags{data: old, unkeyed: true}).chainKey("serve", log); err != nil || k != nil {
		t.Errorf("--unkeyed-chain: %v %v", k, err)
	}
	if !strings.Contains(logs.String(), "unkeyed") {
		t.Errorf("--unkeyed-chain logged no warning: %s", logs.String())
	}
}

// TestServeRetentionFlags: the new serve flags refuse nonsense before
// anything is opened.
func TestServeRetentionFlags(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "data")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--changelog-retention", "-1h"}, "--changelog-retention"},
		{[]string{"--outcome-retention", "-1h"}, "--outcome-retention"},
		{[]string{"--excessive-copies", "0"}, "--excessive-copies"},
		{[]string{"--ledger-sampling", "0"}, "--ledger-sampling"},
		{[]string{"--ledger-sampling", "1.5"}, "--ledger-sampling"},
		{[]string{"--ledger-queue", "0"}, "--ledger-queue"},
		{[]string{"--ledger-retention", "-1h"}, "--ledger-retention"},
		{[]string{"--ledger-maxlen", "-1"}, "--ledger-maxlen"},
	} {
		_, _, err := runInProcess(t, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", data}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error naming %s", tc.args, err, tc.want)
		}
	}
	if _, err := os.Stat(data); err == nil {
		t.Error("a refused serve made the data directory")
	}
}
