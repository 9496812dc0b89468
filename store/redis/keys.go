package redis

import "strconv"

type keys struct{ prefix string }

func (k keys) meta() string             { return k.prefix + ":{cfg}:meta" }
func (k keys) settings() string         { return k.prefix + ":{cfg}:settings" }
func (k keys) settingsReceipts() string { return k.prefix + ":{cfg}:receipts" }
func (k keys) settingsLog() string      { return k.prefix + ":{cfg}:log" }
func (k keys) settingsSeq() string      { return k.prefix + ":{cfg}:seq" }

func (k keys) tag(shard int) string { return k.prefix + ":{" + strconv.Itoa(shard) + "}:" }

func (k keys) user(shard int, id string) string     { return k.tag(shard) + "u:" + id }
func (k keys) receipts(shard int, id string) string { return k.tag(shard) + "r:" + id }
func (k keys) log(shard int) string                 { return k.tag(shard) + "log" }
func (k keys) receiptIndex(shard int) string        { return k.tag(shard) + "rx" }
func (k keys) seq(shard int) string                 { return k.tag(shard) + "seq" }
func (k keys) users(shard int) string               { return k.tag(shard) + "users" }

func (k keys) requests(shard int, id string) string { return k.tag(shard) + "rq:" + id }
