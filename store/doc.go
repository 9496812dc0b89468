// Package store defines the Store, recguard's system of record, and the
// types that cross it: changelog positions and events, the result of an
// applied change, and the errors a store returns.
//
// Implementations live in sub-packages: store/redis (go-redis
// UniversalClient: one Redis or a Redis Cluster) and store/memory (embedded,
// with an append-only file). Every implementation passes the conformance suite
// in store/storetest.
package store
