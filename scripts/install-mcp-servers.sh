#!/usr/bin/env bash
# Installs the MCP servers the integration tests talk to, from their registries, into
# <repo>/.tools/mcp (ignored by git):
#   - @modelcontextprotocol/server-everything (npm) into .tools/mcp/node_modules
#   - mcp-server-time (PyPI) into the venv .tools/mcp/venv
# Idempotent: a server already installed is left as it is.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$root/.tools/mcp"
mkdir -p "$dir"

everything="$dir/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
if [ -f "$everything" ]; then
  echo "server-everything: already installed"
else
  echo "server-everything: installing with npm" >&2
  npm install --silent --no-audit --no-fund --prefix "$dir" @modelcontextprotocol/server-everything@2026.8.31 >&2
  [ -f "$everything" ] || { echo "server-everything: $everything missing after install" >&2; exit 1; }
fi

time_server="$dir/venv/bin/mcp-server-time"
# Runs, not just exists: a venv moved from another directory keeps a dead shebang.
if [ -x "$time_server" ] && "$time_server" --help >/dev/null 2>&1; then
  echo "mcp-server-time: already installed"
else
  echo "mcp-server-time: installing with pip into $dir/venv" >&2
  rm -rf "$dir/venv"
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install --quiet --disable-pip-version-check mcp-server-time==2026.10.19 >&2
  [ -x "$time_server" ] || { echo "mcp-server-time: $time_server missing after install" >&2; exit 1; }
fi
