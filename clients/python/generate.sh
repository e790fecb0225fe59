#!/usr/bin/env bash
# Regenerates src/wfm_client/_gen from the repository's proto/ tree:
#   protobuf messages (grpcio-tools' bundled protoc), gRPC stubs, and mypy-protobuf
#   type stubs (.pyi) for both.
# Re-runnable: the output directory is rebuilt from scratch each time, so new,
# changed and removed .proto files are all reflected.
#
# Uses $PYTHON if set, else clients/python/.venv/bin/python, else python3; that
# interpreter needs the [test] extras (grpcio-tools and mypy-protobuf, pinned exactly
# in pyproject.toml so the output is byte-identical everywhere).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
proto_root="$root/proto"
out="$here/src/wfm_client/_gen"
pkg_prefix="wfm_client._gen"

py="${PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x "$here/.venv/bin/python" ]; then py="$here/.venv/bin/python"; else py="python3"; fi
fi
bindir="$(dirname "$(command -v "$py")")"
plugin() {
  if [ -x "$bindir/$1" ]; then echo "$bindir/$1"; else command -v "$1" || { echo "generate.sh: $1 not found (pip install -e '.[test]')" >&2; exit 1; }; fi
}
mypy_plugin="$(plugin protoc-gen-mypy)"
mypy_grpc_plugin="$(plugin protoc-gen-mypy_grpc)"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Relative, sorted paths: the generated files only mention paths relative to proto/.
mapfile -t protos < <(cd "$proto_root" && find . -name '*.proto' -printf '%P\n' | LC_ALL=C sort)
if [ "${#protos[@]}" -eq 0 ]; then echo "generate.sh: no .proto files under $proto_root" >&2; exit 1; fi

(
  cd "$proto_root"
  "$py" -m grpc_tools.protoc \
    -I . \
    --python_out="$tmp" \
    --grpc_python_out="$tmp" \
    --plugin=protoc-gen-mypy="$mypy_plugin" \
    --plugin=protoc-gen-mypy_grpc="$mypy_grpc_plugin" \
    --mypy_out="$tmp" \
    --mypy_grpc_out="$tmp" \
    "${protos[@]}" 2> >(grep -v '^Writing mypy to ' >&2)
)

# protoc writes imports relative to the proto root ("from workflow.v1 import x_pb2");
# make them absolute inside our package and add the __init__.py files.
"$py" - "$tmp" "$pkg_prefix" <<'PY'
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1])
prefix = sys.argv[2]
top = sorted(p.name for p in root.iterdir() if p.is_dir())
alt = "|".join(re.escape(t) for t in top)
from_re = re.compile(rf"^(\s*)from ({alt})((?:\.\w+)*) import ", re.M)
plain_re = re.compile(rf"^\s*import ({alt})(\.|\s|$)", re.M)

for path in sorted(root.rglob("*")):
    if path.suffix not in (".py", ".pyi"):
        continue
    text = path.read_text()
    text = from_re.sub(lambda m: f"{m.group(1)}from {prefix}.{m.group(2)}{m.group(3)} import ", text)
    bad = plain_re.search(text)
    if bad:
        sys.exit(f"generate.sh: cannot rewrite {bad.group(0).strip()!r} in {path}")
    path.write_text(text)

init = '"""Generated code (see clients/python/generate.sh). Do not edit."""\n'
(root / "__init__.py").write_text(init)
for d in sorted(p for p in root.rglob("*") if p.is_dir()):
    (d / "__init__.py").write_text(init)
PY

rm -rf "$out"
mkdir -p "$(dirname "$out")"
cp -r "$tmp" "$out"
chmod -R u+rwX,go+rX "$out"
echo "generated $(find "$out" -type f | wc -l) files in ${out#"$root"/}"
