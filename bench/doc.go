// Package bench holds recguard's benchmarks. Each one runs a subject next to
// a baseline in the same run (for example a plain per-request Redis command)
// and, at the end of the run, prints the ratio between them: absolute numbers
// on shared machines are noise, ratios measured side by side are not.
//
//	go test -run='^$' -bench=. -benchmem ./bench
//
// Benchmarks talk to the Redis named by RECGUARD_REDIS_ADDRS (default
// 127.0.0.1:6379). Figures and the exact commands are in docs/results.md.
package bench
