#!/usr/bin/env bash
# Cross-language test against one real `wfm serve`:
#   Go         registers workflow cross-sleep (type sleep, label registered-by=go)
#   Python     starts an execution of it (StartExecution), prints the id, waits for it
#   TypeScript watches that execution from sequence 0 (started as soon as the id is known)
#              and reads the workflow back with `get`
#   Go         reads the execution (GetExecution) and shuts the server down
# then checks that the three views agree. Helpers live in clients/crosstest/.
#
# Sets up each client the way its own test.sh does when that has not happened yet
# (Python .venv, npm ci + build of clients/typescript, go mod download) but runs none
# of their test suites. Server binary: $WFM_BIN, default <repo>/target/release/wfm
# (built with `cargo build --release` when missing).
# Usage: bash scripts/cross-language.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cross="$root/clients/crosstest"
say() { printf '== %s\n' "$*"; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/wfm-cross.XXXXXX")"
server_pid=""
py_pid=""
watch_pid=""
cleanup() {
  local rc=$?
  for pid in "$watch_pid" "$py_pid" "$server_pid"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      sleep 0.2
      kill -9 "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM

# -- checks -----------------------------------------------------------------------------
passed=0
failed=0
ok() {
  passed=$((passed + 1))
  printf 'ok   %s\n' "$1"
}
bad() {
  failed=$((failed + 1))
  printf 'FAIL %s\n' "$1" >&2
}
# check_eq DESCRIPTION GOT WANT
check_eq() {
  if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got '$2', want '$3'"; fi
}
finish() {
  echo "cross-language: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}
# fatal DESCRIPTION [FILE...]: a step the rest depends on failed; show the files and stop.
fatal() {
  bad "$1"
  shift
  for f in "$@"; do
    if [ -s "$f" ]; then
      echo "--- $(basename "$f")" >&2
      tail -n 40 "$f" >&2
    fi
  done
  finish
}
# value KEY FILE: the value of the first KEY=... line
value() { sed -n "s/^$1=//p" "$2" | head -n 1; }
# wait_for_line PATTERN FILE PID SECONDS: until FILE has a line matching PATTERN
# (fails early when PID exits without writing it)
wait_for_line() {
  local i
  for ((i = 0; i < $4 * 10; i++)); do
    grep -q -- "$1" "$2" 2>/dev/null && return 0
    if ! kill -0 "$3" 2>/dev/null; then
      grep -q -- "$1" "$2" 2>/dev/null && return 0
      return 1
    fi
    sleep 0.1
  done
  return 1
}
# wait_pid PID SECONDS: wait for a background job; its exit status, 124 on timeout
wait_pid() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$1" 2>/dev/null; then return 124; fi
  local rc=0
  wait "$1" || rc=$?
  return "$rc"
}

# -- set up the clients (idempotent; mirrors each client's test.sh) ---------------------
# Python: clients/python/.venv with wfm-client[test] installed, stamped with the
# pyproject.toml hash exactly as clients/python/test.sh does.
pydir="$root/clients/python"
venv="$pydir/.venv"
py="$venv/bin/python"
if ! "$py" -c 'import sys' >/dev/null 2>&1; then
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "cross-language: python3 >= 3.10 is required" >&2; exit 1; }
  say "creating $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
fi
stamp="$venv/.wfm-client-installed"
want="$(sha256sum <"$pydir/pyproject.toml" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ] || ! "$py" -c 'import wfm_client' >/dev/null 2>&1; then
  say "installing wfm-client[test] into clients/python/.venv"
  (cd "$pydir" && "$py" -m pip install --quiet --upgrade pip && "$py" -m pip install --quiet -e '.[test]')
  echo "$want" >"$stamp"
fi

# TypeScript: node_modules (npm ci, as clients/typescript/test.sh) and dist/ (npm run build),
# rebuilt only when missing or older than the sources.
tsdir="$root/clients/typescript"
if [ ! -d "$tsdir/node_modules/@connectrpc/connect-node" ] || [ ! -x "$tsdir/node_modules/.bin/tsc" ]; then
  say "installing clients/typescript (npm ci)"
  (cd "$tsdir" && npm ci --no-audit --no-fund --ignore-scripts)
fi
if [ ! -f "$tsdir/dist/src/index.js" ] \
  || [ -n "$(find "$tsdir/src" "$tsdir/package.json" "$tsdir/tsconfig.json" -newer "$tsdir/dist/src/index.js" -print -quit)" ]; then
  say "building clients/typescript (npm run build)"
  (cd "$tsdir" && npm run --silent build)
fi

# Go: the client's modules (go mod download, as clients/go/test.sh), then the helper
# module clients/crosstest, which uses ../go through a replace directive.
say "building the Go helper"
(cd "$root/clients/go" && go mod download)
(cd "$cross" && go mod download && go build -o "$tmp/register" .)

# Server binary.
bin="${WFM_BIN:-$root/target/release/wfm}"
if [ ! -x "$bin" ]; then
  if [ -n "${WFM_BIN:-}" ]; then
    echo "cross-language: WFM_BIN=$WFM_BIN is not an executable" >&2
    exit 1
  fi
  say "building the wfm server (cargo build --release)"
  (cd "$root" && cargo build --release)
fi

# -- the server ---------------------------------------------------------------------------
# `wfm serve` reads WFM_* variables as configuration: WFM_BIN is ours, not its.
say "starting $bin serve"
mkdir "$tmp/data"
env -u WFM_BIN "$bin" serve --listen 127.0.0.1:0 --data-dir "$tmp/data" \
  >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!
wait_for_line '^wfm listening on ' "$tmp/server.out" "$server_pid" 30 \
  || fatal "the server announces its address" "$tmp/server.out" "$tmp/server.err"
first="$(head -n 1 "$tmp/server.out")"
addr="${first#wfm listening on }"
if [[ "$addr" =~ ^127\.0\.0\.1:[0-9]+$ ]]; then
  ok "the server listens on $addr"
else
  fatal "the server's first stdout line is 'wfm listening on 127.0.0.1:PORT' (got '$first')" "$tmp/server.err"
fi

# -- Go registers ------------------------------------------------------------------------
say "Go: register cross-sleep"
timeout 60 "$tmp/register" "$addr" >"$tmp/go-register.out" 2>"$tmp/go-register.err" \
  || fatal "Go registers cross-sleep" "$tmp/go-register.out" "$tmp/go-register.err"
cat "$tmp/go-register.out"
check_eq "Go: registered version" "$(value version "$tmp/go-register.out")" "1"
check_eq "Go: the registration created the workflow" "$(value created "$tmp/go-register.out")" "true"

# -- Python executes, TypeScript watches ---------------------------------------------------
say "Python: start and wait for cross-sleep; TypeScript: watch it"
"$py" -u "$cross/execute.py" "$addr" cross-sleep 1500 >"$tmp/py.out" 2>"$tmp/py.err" &
py_pid=$!
wait_for_line '^execution_id=' "$tmp/py.out" "$py_pid" 30 \
  || fatal "Python prints the execution id" "$tmp/py.out" "$tmp/py.err"
exec_id="$(value execution_id "$tmp/py.out")"
node "$cross/watch.mjs" "$addr" watch "$exec_id" >"$tmp/watch.out" 2>"$tmp/watch.err" &
watch_pid=$!
if [ -n "$exec_id" ]; then ok "Python started execution $exec_id"; else bad "Python printed an empty execution id"; fi

py_rc=0
wait_pid "$py_pid" 60 || py_rc=$?
py_pid=""
watch_rc=0
wait_pid "$watch_pid" 60 || watch_rc=$?
watch_pid=""
echo "--- Python"
cat "$tmp/py.out"
echo "--- TypeScript watch"
cat "$tmp/watch.out"
[ -s "$tmp/py.err" ] && { echo "--- Python stderr"; cat "$tmp/py.err"; }
[ -s "$tmp/watch.err" ] && { echo "--- TypeScript stderr"; cat "$tmp/watch.err"; }

check_eq "Python: execute.py exit status" "$py_rc" "0"
check_eq "Python: wait() reports success" "$(value wait_success "$tmp/py.out")" "True"
check_eq "Python: final status" "$(value status "$tmp/py.out")" "COMPLETED"
check_eq "Python: GetExecution workflow" "$(value workflow "$tmp/py.out")" "cross-sleep"
check_eq "Python: GetExecution workflow version" "$(value version "$tmp/py.out")" "1"

check_eq "TypeScript: watcher exit status" "$watch_rc" "0"
mapfile -t seqs < <(sed -n 's/^{"sequence":\([0-9]*\),.*/\1/p' "$tmp/watch.out")
mapfile -t kinds < <(sed -n 's/^{"sequence":[0-9]*,"kind":"\([a-z_]*\)".*/\1/p' "$tmp/watch.out")
n="${#seqs[@]}"
lines="$(grep -c . "$tmp/watch.out" || true)"
check_eq "TypeScript: every output line is an event with a sequence and a kind" \
  "${#seqs[@]} sequences, ${#kinds[@]} kinds" "$lines sequences, $lines kinds"
gaps=""
for ((i = 0; i < n; i++)); do
  [ "${seqs[$i]}" = "$((i + 1))" ] || gaps+=" #$((i + 1))=${seqs[$i]}"
done
if [ "$n" -gt 0 ] && [ -z "$gaps" ]; then
  ok "TypeScript: sequence numbers 1..$n without gaps"
else
  bad "TypeScript: sequence numbers 1..N without gaps (n=$n, mismatches:${gaps:- none})"
fi
check_eq "TypeScript: first kinds" "${kinds[*]:0:3}" "accepted started step_started"
check_eq "TypeScript: last kind" "${kinds[*]: -1}" "completed"
terminal_count="$(printf '%s\n' "${kinds[@]}" | grep -c -E '^(completed|failed|cancelled)$' || true)"
check_eq "TypeScript: exactly one terminal event" "$terminal_count" "1"
live="$(grep -c '"live":true' "$tmp/watch.out" || true)"
echo "note: TypeScript received $live of $n events live, $((n - live)) replayed from sequence 0"
py_kinds="$(value wait_events "$tmp/py.out")"
check_eq "Python's wait() and TypeScript's watch saw the same events" "$py_kinds" "$(IFS=,; echo "${kinds[*]}")"

# -- GetExecution from Go, the workflow from TypeScript ----------------------------------
say "Go: GetExecution"
if timeout 60 "$tmp/register" "$addr" get-execution "$exec_id" >"$tmp/go-get.out" 2>"$tmp/go-get.err"; then
  cat "$tmp/go-get.out"
  check_eq "Go: GetExecution workflow" "$(value workflow "$tmp/go-get.out")" "cross-sleep"
  check_eq "Go: GetExecution workflow version" "$(value version "$tmp/go-get.out")" "1"
  check_eq "Go: GetExecution status" "$(value status "$tmp/go-get.out")" "EXECUTION_STATUS_COMPLETED"
  check_eq "Go: GetExecution last sequence = events TypeScript saw" "$(value last_sequence "$tmp/go-get.out")" "$n"
else
  bad "Go: GetExecution $exec_id ($(cat "$tmp/go-get.err"))"
fi

say "TypeScript: get cross-sleep"
if timeout 60 node "$cross/watch.mjs" "$addr" get cross-sleep >"$tmp/ts-get.out" 2>"$tmp/ts-get.err"; then
  cat "$tmp/ts-get.out"
  wf="$(cat "$tmp/ts-get.out")"
  if [[ "$wf" == *'"labels":{"registered-by":"go"}'* ]]; then
    ok "TypeScript: get shows the label registered-by=go set from Go"
  else
    bad "TypeScript: get shows the label registered-by=go set from Go (got $wf)"
  fi
  if [[ "$wf" == '{"name":"cross-sleep","version":1,"versions":[1],'* && "$wf" == *'"type":"sleep"}' ]]; then
    ok "TypeScript: get shows cross-sleep version 1 of type sleep"
  else
    bad "TypeScript: get shows cross-sleep version 1 of type sleep (got $wf)"
  fi
else
  bad "TypeScript: get cross-sleep ($(cat "$tmp/ts-get.err"))"
fi

# -- shutdown through the Go client -----------------------------------------------------
say "Go: Shutdown"
if timeout 60 "$tmp/register" "$addr" shutdown >"$tmp/go-shutdown.out" 2>"$tmp/go-shutdown.err"; then
  cat "$tmp/go-shutdown.out"
  ok "Go: Shutdown RPC answered"
else
  bad "Go: Shutdown RPC ($(cat "$tmp/go-shutdown.err"))"
fi
server_rc=0
wait_pid "$server_pid" 30 || server_rc=$?
if [ "$server_rc" = 124 ]; then
  bad "the server exits within 30s of Shutdown"
else
  server_pid=""
  check_eq "the server exits with status 0 after Shutdown" "$server_rc" "0"
fi
if [ "$failed" -gt 0 ] && [ -s "$tmp/server.err" ]; then
  echo "--- server stderr (last 40 lines)" >&2
  tail -n 40 "$tmp/server.err" >&2
fi

finish
