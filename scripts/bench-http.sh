#!/usr/bin/env bash
# GET /v1/users/{id}/decision of `recguard serve` against a bare gin handler
# answering the same JSON bytes (bench/cmd/baregin), on this machine, in one
# run, with wrk on loopback as the second process generating the load.
#
#   bash scripts/bench-http.sh
#   USERS=10000 CONNS=32 THREADS=1 DURATION=10s WARMUP=3s ROUNDS=3 bash scripts/bench-http.sh
#   REDIS=redis://127.0.0.1:6379/0 bash scripts/bench-http.sh   # the Redis store instead of the embedded one
#   LOG_REQUESTS=true bash scripts/bench-http.sh                 # serve --log-requests (to a file)
#   PIN=1 bash scripts/bench-http.sh                             # server on CPU 0, wrk on CPU 1 (taskset)
#   RECGUARD_BIN=/path/to/recguard bash scripts/bench-http.sh    # another build of recguard (e.g. an older commit's)
#
# It builds recguard and baregin, seeds USERS users (recguard seed: tags,
# refusals, minors, ...) into a new embedded store (or a new, unique Redis
# prefix, deleted afterwards), makes an app key, starts serve with the rate
# limit kept on (set far above the load), fetches one user's decision as the
# bare handler's body, then runs wrk against each in turn, ROUNDS times
# (same threads, connections, duration; a warmup run before each), cycling
# through every seeded user with the app key. It prints req/s and p99 per
# run, the mean of each side, and the ratio recguard / bare. Every recguard
# answer must be a 200 (wrk's non-2xx count is checked).
#
# Report the load average printed at the end with the figures: the machine
# is shared, and wrk and the servers share its cores.
set -euo pipefail
cd "$(dirname "$0")/.."

USERS=${USERS:-10000}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
ROUNDS=${ROUNDS:-3}
REDIS=${REDIS:-}
LOG_REQUESTS=${LOG_REQUESTS:-false}
PIN=${PIN:-0}
RG_PORT=${RG_PORT:-18080}
BARE_PORT=${BARE_PORT:-18081}

if ! command -v wrk >/dev/null 2>&1; then
  echo "wrk not found: installing Debian's wrk" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
fi
for c in curl go; do
  command -v "$c" >/dev/null 2>&1 || { echo "bench-http: $c is required" >&2; exit 1; }
done

work=$(mktemp -d /tmp/recguard-bench-http.XXXXXX)
pids=()
prefix=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$REDIS" ] && [ -n "$prefix" ] && command -v redis-cli >/dev/null 2>&1; then
    redis-cli -u "$REDIS" --scan --pattern "${prefix}*" | xargs -r -n 500 redis-cli -u "$REDIS" del >/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "building recguard and baregin" >&2
if [ -n "${RECGUARD_BIN:-}" ]; then
  cp "$RECGUARD_BIN" "$work/recguard"
else
  go build -o "$work/recguard" ./cmd/recguard
fi
go build -o "$work/baregin" ./bench/cmd/baregin

store=(--data "$work/data")
init=()
if [ -n "$REDIS" ]; then
  prefix="rgbench$$x$RANDOM"
  head -c 32 /dev/urandom > "$work/chain.key"
  chmod 600 "$work/chain.key"
  store=(--redis "$REDIS" --prefix "$prefix" --chain-key-file "$work/chain.key")
  init=(--init)
fi

echo "seeding $USERS users" >&2
"$work/recguard" seed --users "$USERS" --events 0 "${init[@]}" "${store[@]}" >/dev/null 2>"$work/seed.log" ||
  { cat "$work/seed.log" >&2; exit 1; }
key=$("$work/recguard" keys create --role app --name bench-http "${store[@]}" 2>>"$work/seed.log")

pin_server=()
pin_wrk=()
if [ "$PIN" = 1 ]; then
  pin_server=(taskset -c 0)
  pin_wrk=(taskset -c 1)
fi

"${pin_server[@]}" "$work/recguard" serve --addr "127.0.0.1:$RG_PORT" "${store[@]}" \
  --rate-limit 100000000 --log-requests="$LOG_REQUESTS" --log-format json 2>"$work/serve.log" &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$RG_PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$RG_PORT/readyz" >/dev/null || { echo "serve did not become ready:" >&2; cat "$work/serve.log" >&2; exit 1; }

curl -fsS -H "Authorization: Bearer $key" "http://127.0.0.1:$RG_PORT/v1/users/u0000001/decision" > "$work/body.json"
"${pin_server[@]}" "$work/baregin" --addr "127.0.0.1:$BARE_PORT" --body "$work/body.json" 2>"$work/bare.log" &
pids+=($!)
for _ in $(seq 1 50); do
  curl -fsS "http://127.0.0.1:$BARE_PORT/v1/users/u0000001/decision" >/dev/null 2>&1 && break
  sleep 0.1
done
cmp -s "$work/body.json" <(curl -fsS "http://127.0.0.1:$BARE_PORT/v1/users/u0000001/decision") ||
  { echo "baregin does not answer the same bytes" >&2; exit 1; }
echo "the decision body ($(wc -c < "$work/body.json") bytes): $(cat "$work/body.json")" >&2

cat > "$work/users.lua" <<EOF
-- Every request is prepared once; request() cycles through the seeded users.
local reqs = {}
local n = $USERS
local i = 0
function init(args)
  for u = 0, n - 1 do
    reqs[u + 1] = wrk.format("GET", string.format("/v1/users/u%07d/decision", u),
      { ["Authorization"] = "Bearer $key" })
  end
end
function request()
  i = i % n + 1
  return reqs[i]
end
EOF

# cpu PID: the process's user+system CPU time so far, in clock ticks.
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tick=$(getconf CLK_TCK)

# run NAME PORT DURATION PID: one wrk run; prints "req/s p99_ms non2xx
# server_cpu_us_per_request".
run() {
  local out c0 c1
  c0=$(cpu "$4")
  out=$("${pin_wrk[@]}" wrk -t "$THREADS" -c "$CONNS" -d "$3" --latency -s "$work/users.lua" "http://127.0.0.1:$2" 2>&1)
  c1=$(cpu "$4")
  echo "$out" > "$work/wrk-$1.last"
  local rps p99 bad n
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {v=$2; u=v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
        if (u == "us") v /= 1000; else if (u == "s") v *= 1000; else if (u == "m") v *= 60000; print v}' <<<"$out")
  bad=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  echo "${rps:-0} ${p99:-0} ${bad:-0} $(awk -v c=$((c1 - c0)) -v t="$tick" -v n="${n:-1}" 'BEGIN{printf "%.1f", c / t * 1e6 / n}')"
}

echo "wrk: $THREADS thread(s), $CONNS connections, $DURATION per run (after a $WARMUP warmup), $ROUNDS rounds, $USERS users, pin=$PIN, store=${REDIS:-embedded}, log-requests=$LOG_REQUESTS"
printf "%-7s %-9s %12s %10s %14s\n" round target "req/s" "p99 ms" "server CPU/req"
rg_sum=0; bare_sum=0; rg_p99_sum=0; bare_p99_sum=0; rg_cpu_sum=0; bare_cpu_sum=0
for r in $(seq 1 "$ROUNDS"); do
  for t in recguard bare; do
    port=$RG_PORT pid=${pids[0]}
    [ "$t" = bare ] && port=$BARE_PORT pid=${pids[1]}
    run "$t" "$port" "$WARMUP" "$pid" >/dev/null
    read -r rps p99 bad cpus < <(run "$t" "$port" "$DURATION" "$pid")
    if [ "$bad" != 0 ]; then
      echo "$t answered $bad non-2xx responses:" >&2; cat "$work/wrk-$t.last" >&2; tail -5 "$work/serve.log" >&2; exit 1
    fi
    printf "%-7s %-9s %12.0f %10.2f %11.1f us\n" "$r" "$t" "$rps" "$p99" "$cpus"
    add() { awk -v a="$1" -v b="$2" 'BEGIN{print a+b}'; }
    if [ "$t" = recguard ]; then
      rg_sum=$(add "$rg_sum" "$rps"); rg_p99_sum=$(add "$rg_p99_sum" "$p99"); rg_cpu_sum=$(add "$rg_cpu_sum" "$cpus")
    else
      bare_sum=$(add "$bare_sum" "$rps"); bare_p99_sum=$(add "$bare_p99_sum" "$p99"); bare_cpu_sum=$(add "$bare_cpu_sum" "$cpus")
    fi
  done
done
awk -v rs="$rg_sum" -v bs="$bare_sum" -v rp="$rg_p99_sum" -v bp="$bare_p99_sum" -v rc="$rg_cpu_sum" -v bc="$bare_cpu_sum" -v n="$ROUNDS" 'BEGIN {
  printf "mean    recguard  %12.0f req/s  p99 %.2f ms  server CPU %.1f us/req\n", rs/n, rp/n, rc/n
  printf "mean    bare gin  %12.0f req/s  p99 %.2f ms  server CPU %.1f us/req\n", bs/n, bp/n, bc/n
  printf "ratio   recguard/bare throughput %.2fx (goal >= 0.60x), p99 %.2fx, server CPU per request %.2fx\n", rs/bs, rp/bp, rc/bc
}'
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
