#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: it installs what it needs itself
# (buf from npm, Python packages into a venv, npm packages, Go modules, grpcurl).
#   Rust: fmt, clippy, unit and integration tests against a real server, the fuzz targets
#   for a bounded time (scripts/fuzz.sh)
#   contract: buf lint and buf breaking against buf/baseline.binpb
#   clients: Python, TypeScript and Go tests against a real server; the grpcurl walkthrough
set -euo pipefail
cd "$(dirname "$0")/.."
export WFM_BIN="$PWD/target/release/wfm"

passed=0
failed=0
failures=()
run() {
  local name="$1"
  shift
  echo
  echo "==> $name"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name")
  fi
}

run "cargo fmt --check" cargo fmt --all -- --check
run "cargo clippy" cargo clippy --release --all-targets -- -D warnings
run "buf lint" scripts/buf.sh lint
run "buf breaking" scripts/buf.sh breaking --against buf/baseline.binpb
# The clients and walkthrough need the server binary even if a Rust test failed.
cargo build --release
for setup in scripts/install-mcp-servers.sh; do
  [ -f "$setup" ] && run "$(basename "$setup" .sh)" bash "$setup"
done
run "cargo test" cargo test --release
# The benchmark in its smoke setting: every scenario runs, and it fails on an error or a lost event.
run "wfm bench (smoke)" "$WFM_BIN" bench --smoke
run "fuzz (bounded)" bash scripts/fuzz.sh
for client in python typescript go; do
  [ -f "clients/$client/test.sh" ] && run "$client client" bash "clients/$client/test.sh"
done
[ -f scripts/cross-language.sh ] && run "cross-language" bash scripts/cross-language.sh
[ -f scripts/grpcurl-walkthrough.sh ] && run "grpcurl walkthrough" bash scripts/grpcurl-walkthrough.sh

echo
if [ "$failed" -gt 0 ]; then
  printf 'failed: %s\n' "${failures[@]}"
fi
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
