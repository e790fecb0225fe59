#!/usr/bin/env bash
# Installs, regenerates src/gen (failing on drift), builds, and runs the tests
# against a real wfm server. Usage: bash clients/typescript/test.sh
# Env: WFM_BIN (default <repo>/target/release/wfm, built with cargo if missing).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"

echo "== install"
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund --ignore-scripts
else
  npm install --no-audit --no-fund --ignore-scripts
fi

echo "== generate (drift check on src/gen)"
gen_rel="clients/typescript/src/gen"
snapshot="$(mktemp -d)"
trap 'rm -rf "$snapshot"' EXIT
if [ -d src/gen ]; then cp -R src/gen "$snapshot/gen"; else mkdir "$snapshot/gen"; fi
npm run --silent generate
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1 \
  && [ -n "$(git -C "$root" ls-files -- "$gen_rel")" ]; then
  drift="$(git -C "$root" status --porcelain -- "$gen_rel")"
  if [ -n "$drift" ]; then
    echo "FAIL: $gen_rel differs from what is committed; run 'npm run generate' in clients/typescript and commit:" >&2
    echo "$drift" >&2
    git -C "$root" --no-pager diff --stat -- "$gen_rel" >&2 || true
    exit 1
  fi
  echo "src/gen matches the committed code"
else
  # Not committed yet: at least check that generation reproduces what was there.
  if ! diff -r "$snapshot/gen" src/gen >&2; then
    echo "FAIL: regenerating changed src/gen (see the diff above)" >&2
    exit 1
  fi
  echo "note: $gen_rel is not tracked by git yet; checked against the files present before generation"
fi

echo "== build"
npm run --silent build

echo "== test"
export WFM_BIN="${WFM_BIN:-$root/target/release/wfm}"
if [ ! -x "$WFM_BIN" ]; then
  echo "wfm binary missing at $WFM_BIN; building it (cargo build --release)"
  (cd "$root" && cargo build --release)
fi
npm test
