#!/usr/bin/env bash
# A local Redis Cluster for trying recguard on a cluster: 6 nodes (3 masters,
# 3 replicas) on loopback, with AOF persistence, in a temporary directory.
#
#   scripts/redis-cluster.sh start    # nodes on 127.0.0.1:7000-7005; prints the --redis-cluster flag
#   scripts/redis-cluster.sh stop     # stops them and removes their directory
#   scripts/redis-cluster.sh status   # the cluster's state, or "not running"
#
# REDIS_CLUSTER_PORT=N uses ports N..N+5 (default 7000). With
# REDIS_CLUSTER_PASSWORD=P every node requires the password P (give serve
# RECGUARD_REDIS_PASSWORD=P). Needs redis-server and redis-cli (Redis 6 or
# later). The directory of a running cluster is recorded in
# ${TMPDIR:-/tmp}/recguard-redis-cluster-N, so stop finds it.
#
# Not for production: one machine, loopback only. See docs/operations.md,
# "Redis Cluster, locally".
set -euo pipefail

port=${REDIS_CLUSTER_PORT:-7000}
password=${REDIS_CLUSTER_PASSWORD:-}
state="${TMPDIR:-/tmp}/recguard-redis-cluster-$port"
nodes=6

die() { echo "redis-cluster.sh: $*" >&2; exit 1; }

cli() { # cli PORT ARGS...: redis-cli on a node, with the password if any
	local p=$1
	shift
	if [ -n "$password" ]; then
		REDISCLI_AUTH="$password" redis-cli -h 127.0.0.1 -p "$p" "$@"
	else
		redis-cli -h 127.0.0.1 -p "$p" "$@"
	fi
}

addrs() { # the nodes' addresses, comma-separated
	local out="" i
	for ((i = 0; i < nodes; i++)); do
		out+="${out:+,}127.0.0.1:$((port + i))"
	done
	echo "$out"
}

start() {
	command -v redis-server >/dev/null || die "redis-server not found: install Redis (apt-get install redis-server, brew install redis)"
	command -v redis-cli >/dev/null || die "redis-cli not found: install Redis's tools"
	if [ -f "$state" ]; then
		die "a cluster on ports $port..$((port + nodes - 1)) already runs (directory $(cat "$state")): run $0 stop first"
	fi
	local i p
	for ((i = 0; i < nodes; i++)); do
		p=$((port + i))
		if cli "$p" ping >/dev/null 2>&1; then
			die "127.0.0.1:$p already answers: choose other ports with REDIS_CLUSTER_PORT"
		fi
	done
	local dir
	dir=$(mktemp -d "${TMPDIR:-/tmp}/recguard-redis-cluster.XXXXXX")
	echo "$dir" >"$state"
	local auth=()
	if [ -n "$password" ]; then
		auth=(--requirepass "$password" --masterauth "$password")
	fi
	for ((i = 0; i < nodes; i++)); do
		p=$((port + i))
		mkdir -p "$dir/$p"
		redis-server --port "$p" --bind 127.0.0.1 --dir "$dir/$p" \
			--cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
			--appendonly yes --appendfsync everysec --save "" --maxmemory-policy noeviction \
			--repl-diskless-sync-delay 0 --daemonize yes --pidfile "$dir/$p/redis.pid" \
			--logfile "$dir/$p/redis.log" "${auth[@]}" >/dev/null \
			|| { stop >/dev/null 2>&1 || true; die "redis-server on port $p did not start"; }
	done
	for ((i = 0; i < nodes; i++)); do
		p=$((port + i))
		local tries=0
		until cli "$p" ping 2>/dev/null | grep -q PONG; do
			tries=$((tries + 1))
			if [ "$tries" -gt 100 ]; then
				stop >/dev/null 2>&1 || true
				die "node 127.0.0.1:$p does not answer (its log: $dir/$p/redis.log)"
			fi
			sleep 0.1
		done
	done
	local create=(--cluster create)
	for ((i = 0; i < nodes; i++)); do
		create+=("127.0.0.1:$((port + i))")
	done
	create+=(--cluster-replicas 1 --cluster-yes)
	if ! cli "$port" "${create[@]}" >"$dir/create.log" 2>&1; then
		cat "$dir/create.log" >&2
		stop >/dev/null 2>&1 || true
		die "redis-cli --cluster create failed"
	fi
	for ((i = 0; i < nodes; i++)); do
		p=$((port + i))
		local tries=0
		until cli "$p" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; do
			tries=$((tries + 1))
			if [ "$tries" -gt 300 ]; then
				stop >/dev/null 2>&1 || true
				die "node 127.0.0.1:$p did not report cluster_state:ok within 30 s"
			fi
			sleep 0.1
		done
	done
	local a
	a=$(addrs)
	cat <<EOF
Redis Cluster up: 3 masters and 3 replicas on 127.0.0.1:$port-$((port + nodes - 1)), AOF on, noeviction
(data and logs in $dir; stop it with: $0 stop)

--redis-cluster $a

First start of recguard on it (--init once; every instance needs the same chain key):
  head -c 32 /dev/urandom > chain.key && chmod 600 chain.key
  recguard serve --redis-cluster $a --chain-key-file chain.key --init
EOF
	if [ -n "$password" ]; then
		echo "  (with RECGUARD_REDIS_PASSWORD set to the password)"
	fi
}

stop() {
	[ -f "$state" ] || die "no cluster on ports $port..$((port + nodes - 1)) recorded in $state"
	local dir pidf pid
	local -a pids=()
	dir=$(cat "$state")
	# Read every pid first: a node deletes its pid file as it exits.
	for pidf in "$dir"/*/redis.pid; do
		pid=$(cat "$pidf" 2>/dev/null) || continue
		pids+=("$pid")
	done
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		local tries=0
		while kill -0 "$pid" 2>/dev/null; do
			tries=$((tries + 1))
			if [ "$tries" -gt 100 ]; then
				kill -9 "$pid" 2>/dev/null || true
				break
			fi
			sleep 0.1
		done
	done
	case "$dir" in
	*/recguard-redis-cluster.*) rm -rf "$dir" ;;
	esac
	rm -f "$state"
	echo "Redis Cluster on 127.0.0.1:$port-$((port + nodes - 1)) stopped"
}

status() {
	if [ ! -f "$state" ]; then
		echo "not running (no $state)"
		return 1
	fi
	echo "directory $(cat "$state")"
	cli "$port" cluster info | grep -E 'cluster_state|cluster_known_nodes|cluster_size'
	echo "--redis-cluster $(addrs)"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
	echo "usage: $0 start|stop|status   (REDIS_CLUSTER_PORT=7000, REDIS_CLUSTER_PASSWORD=...)" >&2
	exit 2
	;;
esac
