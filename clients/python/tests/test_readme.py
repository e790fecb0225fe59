"""Every Python example of README.md runs as written against a real server and prints
what its comments say (a ``print(...)  # text`` line must print the line ``text``)."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re

import pytest

from .conftest import WfmServer

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCK_RE = re.compile(r"^```python\n(.*?)^```", re.M | re.S)
PRINT_RE = re.compile(r"^\s*print\(.*\)\s+#\s*(.+?)\s*$")


def readme_examples() -> list[str]:
    blocks = BLOCK_RE.findall(README.read_text())
    assert blocks, f"no python examples in {README}"
    return blocks


@pytest.mark.parametrize("code", readme_examples(), ids=lambda code: code.splitlines()[0][:40])
def test_readme_example_runs(server: WfmServer, code: str) -> None:
    assert "127.0.0.1:50051" in code
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.replace("127.0.0.1:50051", server.target), str(README), "exec"), {})
    printed = out.getvalue().splitlines()
    expected = [m.group(1) for line in code.splitlines() if (m := PRINT_RE.match(line))]
    assert expected, "the example shows no expected output"
    missing = [e for e in expected if e not in printed]
    assert not missing, f"printed:\n{out.getvalue()}"
