#!/usr/bin/env bash
# mutants/run.sh: mutation testing of recguard's rules (issue 11).
#
# For every mutant in mutants/mutants.txt: apply it to a COPY of the
# repository (never to the working tree), run `go test` on the packages the
# list names (with their -run patterns), and print killed/survived; then the
# kill ratio. Exit 1 when a mutant not argued equivalent survives, when a
# snippet no longer matches the code (keep the list current), when a mutant
# does not build, or when the tests fail without any mutant (baseline).
#
#   bash mutants/run.sh                 # the committed code (HEAD)
#   bash mutants/run.sh --rev REV       # another commit
#   bash mutants/run.sh --worktree      # the working tree as it is now (uncommitted edits too)
#   bash mutants/run.sh --only id1,id2  # some mutants only
#   bash mutants/run.sh --md            # also print the result table as Markdown
#   bash mutants/run.sh --check         # only check that every snippet matches
#
# Environment: MUTANTS_WORK (default /tmp/recguard-mutants: the copy lives in
# $MUTANTS_WORK/src; a fixed path lets the Go build cache serve unchanged
# packages across runs), MUTANTS_TIMEOUT (per go test run, default 240s).
# Tests run with -p 1 -count=1; the Redis tests use RECGUARD_REDIS_ADDRS or
# 127.0.0.1:6379 as usual (with key prefixes of their own).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
list="$here/mutants.txt"
work=${MUTANTS_WORK:-/tmp/recguard-mutants}
tmo=${MUTANTS_TIMEOUT:-240s}
rev=HEAD worktree=0 only="" md=0 checkonly=0
while [ $# -gt 0 ]; do
  case $1 in
    --rev) rev=$2; shift 2 ;;
    --worktree) worktree=1; shift ;;
    --only) only=$2; shift 2 ;;
    --md) md=1; shift ;;
    --check) checkonly=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

t_all=$(date +%s)
mkdir -p "$work"
exec 9>"$work/lock"
if ! flock -n 9; then
  echo "another mutants/run.sh uses $work (set MUTANTS_WORK to run beside it)" >&2
  exit 2
fi

# The copy: the commit (git archive: nothing in the repository changes) or
# the working tree without .git.
src="$work/src"
rm -rf "$src" && mkdir -p "$src"
if [ $worktree = 1 ]; then
  (cd "$repo" && tar --exclude=./.git --exclude=./recguard-data -cf - .) | tar -xf - -C "$src"
  what="working tree of $repo (based on $(git -C "$repo" rev-parse --short HEAD))"
else
  git -C "$repo" archive "$rev" | tar -xf - -C "$src" || exit 2
  what="$rev = $(git -C "$repo" rev-parse --short "$rev")"
fi

mut="$work/mutate"
(cd "$repo" && go build -o "$mut" "$here/mutate.go") || exit 2

echo "mutants: $list"
echo "code:    $what"
if ! "$mut" check "$list" "$src"; then
  exit 1
fi
[ $checkonly = 1 ] && { echo "every snippet matches"; exit 0; }

ids=$("$mut" ids "$list")
if [ -n "$only" ]; then
  ids=$(echo "$ids" | grep -Fx -f <(tr ',' '\n' <<<"$only"))
fi

# runtests DIR "pkg [regexp]"...: runs each, prints the failing top-level
# tests (or "build failed"/"timeout") on stdout; returns 1 if any failed.
runtests() {
  local dir=$1; shift
  local rc=0 line pkg re out st
  for line in "$@"; do
    pkg=${line%% *}; re=""
    [ "$line" != "$pkg" ] && re=${line#* }
    local args=(-count=1 -p 1 -timeout "$tmo")
    [ -n "$re" ] && args+=(-run "$re")
    out=$(cd "$dir" && timeout -k 10 "$(( ${tmo%s} + 60 ))" go test "${args[@]}" "$pkg" 2>&1)
    st=$?
    if [ $st -ne 0 ]; then
      rc=1
      if grep -qE "$envfail" <<<"$out"; then
        echo "ENV($pkg)"
      elif grep -qE '\[(build|setup) failed\]|^# ' <<<"$out"; then
        echo "BUILD-FAILED($pkg)"
      elif [ $st -eq 124 ] || grep -q 'panic: test timed out' <<<"$out"; then
        echo "TIMEOUT($pkg)"
      else
        local p=${pkg#./}
        local names
        names=$(grep -oE '^--- FAIL: [A-Za-z0-9_]+' <<<"$out" | awk -v p="$p" '{print p"."$3}' | sort -u)
        [ -z "$names" ] && names="FAIL($pkg)"
        echo "$names"
      fi
      echo "$out" >>"$work/last-failures.log"
    fi
  done
  return $rc
}
: >"$work/last-failures.log"
# Failures that say the environment, not the code, is at fault (the shared
# Redis did not answer at all): such a run proves nothing either way; the
# mutant is run again after a pause, and reported inconclusive if it
# persists.
envfail='redis at \[.*\(start one with|connect: connection refused.*6379'

# Baseline: without any mutant, the tests the selected mutants name must
# pass (per package, the union of their patterns).
echo "baseline (no mutant)..."
mapfile -t union < <("$mut" union "$list" $ids)
if ! base=$(runtests "$src" "${union[@]}"); then
  echo "baseline FAILED: the tests fail without any mutant; fix them first:" >&2
  echo "$base" | tr '\n' ' ' >&2; echo >&2
  echo "(output in $work/last-failures.log)" >&2
  exit 1
fi

total=0 killed=0 survived=0 equiv=0 equivkilled=0 invalid=0 inconclusive=0
rows=()
start=$(date +%s)
printf '%-42s %-9s %-10s %5s  %s\n' "mutant" "article" "result" "secs" "killed by"
for id in $ids; do
  total=$((total+1))
  file=$("$mut" get "$list" "$id" file)
  eq=$("$mut" get "$list" "$id" equivalent)
  art=$("$mut" get "$list" "$id" article)
  mapfile -t tests < <("$mut" get "$list" "$id" tests)
  cp "$src/$file" "$work/orig"
  t0=$(date +%s)
  if ! "$mut" apply "$list" "$id" "$src"; then
    cp "$work/orig" "$src/$file"
    exit 1
  fi
  for try in 1 2 3; do
    by=$(runtests "$src" "${tests[@]}"); st=$?
    grep -q 'ENV(' <<<"$by" || break
    echo "  ($id: the environment failed the tests, not the mutant; again in 15 s)" >&2
    sleep 15
  done
  cp "$work/orig" "$src/$file"
  secs=$(( $(date +%s) - t0 ))
  by=$(echo "$by" | tr '\n' ' ' | sed 's/ *$//')
  if grep -q 'ENV(' <<<"$by"; then
    res=INCONCLUSIVE; inconclusive=$((inconclusive+1))
  elif grep -q 'BUILD-FAILED' <<<"$by"; then
    res=INVALID; invalid=$((invalid+1))
  elif [ $st -ne 0 ] && [ -n "$eq" ]; then
    res=killed*; killed=$((killed+1)); equivkilled=$((equivkilled+1))
  elif [ $st -ne 0 ]; then
    res=killed; killed=$((killed+1))
  elif [ -n "$eq" ]; then
    res=equivalent; equiv=$((equiv+1)); by="survived: argued equivalent in mutants.txt"
  else
    res=SURVIVED; survived=$((survived+1)); by="-"
  fi
  printf '%-42s %-9s %-10s %5s  %s\n' "$id" "${art%%[ ,]*}" "$res" "$secs" "$by"
  short=$by
  case $res in killed*) short=$(echo "$by" | awk '{ if (NF > 3) { printf "%s %s %s (+%d more)", $1, $2, $3, NF-3 } else print }') ;; esac
  rows+=("| \`$id\` | $art | \`$file\` | $res | $(sed -E 's/([A-Za-z0-9_/]+\.(Test|Example|Fuzz)[A-Za-z0-9_]+)/`\1`/g' <<<"$short") |")
done
elapsed=$(( $(date +%s) - start ))
wall=$(( $(date +%s) - t_all ))
counted=$((total - equiv - inconclusive - invalid))
echo
echo "mutants: $total; killed: $killed; survived: $survived; argued equivalent (survived): $equiv; not building: $invalid; inconclusive (environment): $inconclusive"
if [ $counted -gt 0 ]; then
  echo "kill ratio (equivalents excluded): $killed/$counted = $(awk -v k=$killed -v n=$counted 'BEGIN{printf "%.1f%%", 100*k/n}')"
fi
[ $equivkilled -gt 0 ] && echo "note: $equivkilled mutant(s) argued equivalent were killed (killed*): the argument or a test is wrong; look again"
echo "time: ${elapsed}s for the mutants, ${wall}s in all (copy, build, baseline included)"
if [ $md = 1 ]; then
  echo
  echo "| mutant | article | file | result | killed by |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
fi
if [ $survived -gt 0 ] || [ $invalid -gt 0 ] || [ $inconclusive -gt 0 ]; then
  exit 1
fi
exit 0
