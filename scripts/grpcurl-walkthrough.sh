#!/usr/bin/env bash
# A walkthrough of the wfm gRPC API with grpcurl, through server reflection only
# (no proto file): starts a real `wfm serve` on a free loopback port with a
# temporary data dir, runs each command (printed first, ready to copy), checks
# its output, and shuts the server down. Exits non-zero on any mismatch.
#
# grpcurl: taken from PATH, else <repo>/.tools/bin, else installed there from
# the Go module proxy. The server binary: $WFM_BIN, default <repo>/target/release/wfm.
set -euo pipefail

GRPCURL_VERSION=v1.9.4
root="$(cd "$(dirname "$0")/.." && pwd)"
wfm_bin="${WFM_BIN:-$root/target/release/wfm}"

fail() { echo "FAIL: $*" >&2; exit 1; }

# --- grpcurl ---------------------------------------------------------------
if command -v grpcurl >/dev/null 2>&1; then
  grpcurl_bin="$(command -v grpcurl)"
elif [ -x "$root/.tools/bin/grpcurl" ]; then
  grpcurl_bin="$root/.tools/bin/grpcurl"
else
  echo "installing grpcurl $GRPCURL_VERSION into $root/.tools/bin" >&2
  mkdir -p "$root/.tools/bin"
  GOBIN="$root/.tools/bin" go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
  grpcurl_bin="$root/.tools/bin/grpcurl"
fi
grpcurl() { "$grpcurl_bin" "$@"; }
echo "using $grpcurl_bin ($("$grpcurl_bin" -version 2>&1))"

# --- server ----------------------------------------------------------------
[ -x "$wfm_bin" ] || fail "no wfm binary at $wfm_bin (cargo build --release, or set WFM_BIN)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/wfm-grpcurl.XXXXXX")"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# The server reads WFM_* variables as configuration (one naming a section refuses
# keys the section does not have); WFM_BIN is the script's own, kept from it.
env -u WFM_BIN "$wfm_bin" serve --listen 127.0.0.1:0 --data-dir "$tmp/data" >"$tmp/stdout" 2>"$tmp/stderr" &
server_pid=$!
addr=""
for _ in $(seq 1 300); do
  line="$(head -n 1 "$tmp/stdout" 2>/dev/null || true)"
  case "$line" in
    "wfm listening on "*) addr="${line#wfm listening on }"; break ;;
  esac
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/stderr" >&2; fail "wfm serve exited early"; }
  sleep 0.1
done
[ -n "$addr" ] || { cat "$tmp/stderr" >&2; fail "wfm serve printed no address within 30s"; }
echo "wfm serve is listening on $addr (data dir $tmp/data)"

# --- helpers ---------------------------------------------------------------
# quote ARG: the argument as the shell would need it typed.
quote() {
  case "$1" in
    *[!A-Za-z0-9_./:=@%+-]*|'') printf "'%s'" "${1//\'/\'\\\'\'}" ;;
    *) printf '%s' "$1" ;;
  esac
}
steps=0
# step ARGS...: prints "$ grpcurl ARGS", runs it, keeps the output in $out; fails on a non-zero exit.
step() {
  steps=$((steps + 1))
  local shown="grpcurl" a
  for a in "$@"; do shown+=" $(quote "$a")"; done
  echo
  echo "\$ $shown"
  if ! out="$(grpcurl "$@" 2>&1)"; then
    echo "$out"
    fail "command failed: $shown"
  fi
  echo "$out"
}
# expect TEXT...: each TEXT must occur in the last output.
expect() {
  local t
  for t in "$@"; do
    grep -qF -- "$t" <<<"$out" || fail "output of step $steps lacks: $t"
  done
}
checks=0
check() { checks=$((checks + 1)); }

# --- walkthrough -----------------------------------------------------------
# 1. Services, by reflection.
step -plaintext "$addr" list
expect workflow.v1.WorkflowService grpc.health.v1.Health grpc.reflection.v1.ServerReflection; check

# 2. The service's methods, with their comments.
step -plaintext "$addr" describe workflow.v1.WorkflowService
expect "workflow.v1.WorkflowService is a service:" \
  "rpc Register ( .workflow.v1.RegisterRequest ) returns ( .workflow.v1.RegisterResponse );" \
  "rpc Execute ( .workflow.v1.ExecuteRequest ) returns ( stream .workflow.v1.ExecuteResponse );" \
  "rpc WatchExecution ( .workflow.v1.WatchExecutionRequest ) returns ( stream .workflow.v1.WatchExecutionResponse );" \
  "rpc Shutdown ( .workflow.v1.ShutdownRequest ) returns ( .workflow.v1.ShutdownResponse );"; check
for m in Register Unregister List Get Execute StartExecution GetExecution ListExecutions WatchExecution \
  CancelExecution ListWorkflowTypes ListTools Shutdown; do
  expect "rpc $m ("
done

# 3. A message type, to see what to send.
step -plaintext "$addr" describe workflow.v1.RegisterRequest
expect "message RegisterRequest {" ".workflow.v1.NativeSource native = 5;"; check

# 4. Health: the service's methods, then a check of the whole server and of WorkflowService.
step -plaintext "$addr" list grpc.health.v1.Health
expect grpc.health.v1.Health.Check grpc.health.v1.Health.Watch; check
step -plaintext "$addr" grpc.health.v1.Health/Check
expect '"status": "SERVING"'; check
step -plaintext -d '{"service":"workflow.v1.WorkflowService"}' "$addr" grpc.health.v1.Health/Check
expect '"status": "SERVING"'; check

# 5. The workflow types the server can build.
step -plaintext "$addr" workflow.v1.WorkflowService/ListWorkflowTypes
expect '"name": "echo"' '"name": "sleep"'; check

# 6. Register an echo workflow named hello.
step -plaintext -d '{"name":"hello","native":{"type":"echo"}}' "$addr" workflow.v1.WorkflowService/Register
expect '"name": "hello"' '"version": 1' '"type": "echo"' '"created": true'; check

# 7. List the workflows.
step -plaintext "$addr" workflow.v1.WorkflowService/List
expect '"workflows": [' '"name": "hello"'; check

# 8. Execute it: the events stream in until the terminal one.
step -plaintext -d '{"name":"hello","input":{"greeting":"hi"}}' "$addr" workflow.v1.WorkflowService/Execute
expect '"accepted": {' '"started": {' '"stepStarted": {' '"stepCompleted": {' '"completed": {' \
  '"stepId": "echo"' '"success": true' '"greeting": "hi"'; check
# ... in order, numbered 1 to 5.
kinds="$(grep -oE '^    "(accepted|queued|started|stepStarted|stepProgress|stepCompleted|stepFailed|stepSkipped|stepCancelled|completed|failed|cancelled)"' <<<"$out" | tr -d ' "' | paste -sd, -)"
[ "$kinds" = "accepted,started,stepStarted,stepCompleted,completed" ] || fail "Execute event kinds: $kinds"
seqs="$(grep -oE '"sequence": "[0-9]+"' <<<"$out" | grep -oE '[0-9]+' | paste -sd, -)"
[ "$seqs" = "1,2,3,4,5" ] || fail "Execute sequence numbers: $seqs"
check
execution_id="$(grep -m1 -oE '"executionId": "[^"]+"' <<<"$out" | cut -d'"' -f4)"
[ -n "$execution_id" ] || fail "no executionId in Execute's output"

# 9. Replay its events after sequence 2.
step -plaintext -d "{\"execution_id\":\"$execution_id\",\"after_sequence\":2}" "$addr" workflow.v1.WorkflowService/WatchExecution
seqs="$(grep -oE '"sequence": "[0-9]+"' <<<"$out" | grep -oE '[0-9]+' | paste -sd, -)"
[ "$seqs" = "3,4,5" ] || fail "WatchExecution after 2: sequence numbers $seqs, want 3,4,5"
check

# 10. Errors come back as gRPC status codes.
steps=$((steps + 1))
echo
echo "\$ grpcurl -plaintext -d '{\"name\":\"nope\"}' $addr workflow.v1.WorkflowService/Execute"
if out="$(grpcurl -plaintext -d '{"name":"nope"}' "$addr" workflow.v1.WorkflowService/Execute 2>&1)"; then
  echo "$out"; fail "Execute of an unknown workflow succeeded"
fi
echo "$out"
expect "Code: NotFound"; check

# 11. Shut the server down; it answers, then exits 0.
step -plaintext -d '{"grace_period":"5s"}' "$addr" workflow.v1.WorkflowService/Shutdown
check
exit_code=0
for _ in $(seq 1 300); do
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$server_pid" 2>/dev/null; then fail "the server still runs 30s after Shutdown"; fi
wait "$server_pid" || exit_code=$?
server_pid=""
[ "$exit_code" -eq 0 ] || { cat "$tmp/stderr" >&2; fail "the server exited with $exit_code after Shutdown"; }
echo
echo "server exited with code 0"

echo
echo "grpcurl walkthrough: $checks passed, 0 failed"
