#!/usr/bin/env bash
# Tests the Go client: download modules, build the plugins, regenerate gen/ and
# fail on drift, then `go test` against a real `wfm serve` ($WFM_BIN, default
# <repo>/target/release/wfm, built here with cargo when missing).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"

echo "== go mod download"
go mod download
go mod verify

echo "== regenerate gen/"
snapshot() { (cd "$here" && find gen -type f -print0 | sort -z | xargs -0 sha256sum 2>/dev/null || true); }
before="$(snapshot)"
bash "$here/generate.sh"
after="$(snapshot)"
if [ "$before" != "$after" ]; then
  echo "FAIL: regenerating changed gen/ (run clients/go/generate.sh and commit the result):" >&2
  diff <(echo "$before") <(echo "$after") >&2 || true
  exit 1
fi
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  if [ -z "$(git -C "$root" ls-files -- clients/go/gen)" ]; then
    echo "note: clients/go/gen is not committed yet; only checked that regenerating changes nothing"
  else
    drift="$(git -C "$root" status --porcelain -- clients/go/gen)"
    if [ -n "$drift" ]; then
      echo "FAIL: clients/go/gen differs from what is committed (run clients/go/generate.sh and commit):" >&2
      echo "$drift" >&2
      git -C "$root" --no-pager diff --stat -- clients/go/gen >&2 || true
      exit 1
    fi
  fi
fi
echo "gen/ is up to date"

if [ -z "${WFM_BIN:-}" ] && [ ! -x "$root/target/release/wfm" ]; then
  echo "== building the wfm server (cargo build --release)"
  (cd "$root" && cargo build --release)
fi

echo "== go vet"
go vet ./...
echo "== go test"
go test -count=1 -v ./...
