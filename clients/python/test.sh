#!/usr/bin/env bash
# Sets up clients/python/.venv (first run, or when pyproject.toml changed), regenerates
# the gRPC code and fails if it differs from what is checked in, then runs the tests
# against a real wfm server (the binary at $WFM_BIN, default <repo>/target/release/wfm,
# built with `cargo build --release` when missing). Extra arguments go to pytest.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"

say() { printf '== %s\n' "$*"; }

# -- virtualenv ---------------------------------------------------------------------
venv="$here/.venv"
py="$venv/bin/python"
if ! "$py" -c 'import sys' >/dev/null 2>&1; then
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "test.sh: python3 >= 3.10 is required" >&2; exit 1; }
  say "creating $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
fi
stamp="$venv/.wfm-client-installed"
want="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  say "installing wfm-client[test] into .venv"
  "$py" -m pip install --quiet --upgrade pip
  "$py" -m pip install --quiet -e '.[test]'
  echo "$want" > "$stamp"
fi

# -- server binary ------------------------------------------------------------------
if [ -z "${WFM_BIN:-}" ] && [ ! -x "$root/target/release/wfm" ]; then
  say "building the wfm server (cargo build --release)"
  (cd "$root" && cargo build --release)
fi

# -- generated code must be up to date ------------------------------------------------
gen="src/wfm_client/_gen"
snapshot="$(mktemp -d)"
trap 'rm -rf "$snapshot"' EXIT
if [ -d "$gen" ]; then cp -r "$gen" "$snapshot/before"; else mkdir "$snapshot/before"; fi

say "regenerating $gen"
PYTHON="$py" ./generate.sh

stale() {
  echo "test.sh: the generated code in clients/python/$gen is not what generate.sh produces" >&2
  echo "         from proto/: run clients/python/generate.sh and commit the result." >&2
  exit 1
}
if git -C "$here" rev-parse --is-inside-work-tree >/dev/null 2>&1 && [ -n "$(git ls-files -- "$gen")" ]; then
  git --no-pager diff --exit-code --stat -- "$gen" || stale
  untracked="$(git status --porcelain --untracked-files=all -- "$gen")"
  if [ -n "$untracked" ]; then echo "$untracked" >&2; stale; fi
else
  # Not committed yet (or no git): compare with what was there before regenerating.
  echo "note: $gen is not tracked by git yet; checking it against the pre-generation copy"
  diff -r -x __pycache__ "$snapshot/before" "$gen" || stale
fi

# -- tests ----------------------------------------------------------------------------
say "pytest"
"$py" -m pytest "$@"
