package main

import (
	"flag"
	"io"
	"slices"
	"testing"
)

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		pos       []string
		redis, nm string
	}{
		{args: []string{"abc", "--redis", "redis://h:1/0"}, pos: []string{"abc"}, redis: "redis://h:1/0"},
		{args: []string{"--redis", "redis://h:1/0", "abc"}, pos: []string{"abc"}, redis: "redis://h:1/0"},
		{args: []string{"--name", "n", "abc", "--redis=r", "def"}, pos: []string{"abc", "def"}, redis: "r", nm: "n"},
		{args: []string{"abc", "--", "--redis", "r"}, pos: []string{"abc", "--redis", "r"}},
		{args: []string{"--", "-x"}, pos: []string{"-x"}},
		{args: nil, pos: nil},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		redis := fs.String("redis", "", "")
		name := fs.String("name", "", "")
		pos, err := parseInterspersed(fs, tc.args)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if !slices.Equal(pos, tc.pos) || *redis != tc.redis || *name != tc.nm {
			t.Errorf("%q: positional %q redis %q name %q, want %q %q %q", tc.args, pos, *redis, *name, tc.pos, tc.redis, tc.nm)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := parseInterspersed(fs, []string{"abc", "--nosuch"}); err == nil {
		t.Errorf("an unknown flag after a positional argument was accepted")
	}
}
