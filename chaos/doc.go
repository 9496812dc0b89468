// Package chaos is recguard's chaos suite: trials that break the network
// and the processes under running SDK clients and servers, record what was
// acknowledged and what was answered, and check the history afterwards, in
// the manner of Jepsen (a history of acknowledged operations checked against
// a model), FoundationDB (seeded trials that replay) and SQLite (faults
// injected under every promise).
//
// The package holds only tests. Each trial:
//
//   - starts its own real processes on loopback (redis-server, a Redis
//     Cluster, the recguard binary) and stops them when it ends;
//   - runs SDK instances (sdk.Client on store/redis) with writers that turn
//     users' personalization off and on (consent.SetPersonalization) and
//     readers that ask for decisions (sdk.Client.Decide), recording every
//     acknowledged change (Apply returned no error: with
//     sdk.Config.WaitForAll and store/redis Durability, not
//     sdk.ErrNotPropagated nor store.ErrNotReplicated) and every answer,
//     each with its start and end time and instance;
//   - injects one fault at a seeded time: a TCP fault between an instance
//     and Redis (internal/faultproxy: latency, stall, drop, reset,
//     blackhole), a SIGKILL of an AOF-always Redis, of a Redis without
//     persistence, of an embedded-store `recguard serve`, or of the master
//     of a Redis Cluster slot (promotion of its replica);
//   - checks the history: (a) no personalized answer after an acknowledged
//     opt-out, (b) no acknowledged change lost (its receipt and its effect
//     are in the store after the fault), (c) answers fail closed
//     (personalized=false, reason unverified, unavailable or data_loss)
//     within lease + 0.5 s of the fault, (d) answers are verified and
//     correct again within 2 s of the fault healing.
//
// Every trial logs its seed and the command that replays it; the seed fixes
// the fault, its target, its timing and the workload's choices (the real
// processes still run on real time):
//
//	go test ./chaos -run TestProxyFaults -v -chaos.seed=1234
//	RECGUARD_CHAOS_SEED=1234 go test ./chaos -run TestProxyFaults -v
//
// By default (and under -short) each test runs a small bounded number of
// trials with a 1 s lease, so `go test -race ./...` stays quick. The long
// run (more trials, the default 2 s lease, longer faults, client settings
// compared) is
//
//	RECGUARD_CHAOS=long go test ./chaos -v -timeout 60m   # or -chaos.long
//
// and its measured table is in docs/chaos.md.
package chaos
