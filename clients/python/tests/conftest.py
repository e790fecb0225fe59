"""Fixtures: real `wfm serve` processes on 127.0.0.1 with throwaway data directories."""

from __future__ import annotations

import os
import pathlib
import re
import selectors
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import pytest

from wfm_client import Client

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
LISTEN_RE = re.compile(r"^wfm listening on (\S+)\s*$")
STARTUP_TIMEOUT = 20.0


def wfm_bin() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("WFM_BIN") or REPO_ROOT / "target" / "release" / "wfm")
    if not path.is_file():
        pytest.fail(f"wfm binary not found at {path}: run `cargo build --release` in {REPO_ROOT} or set WFM_BIN")
    return path


@dataclass
class WfmServer:
    proc: subprocess.Popen[bytes]
    address: str
    data_dir: pathlib.Path
    log_path: pathlib.Path

    @property
    def target(self) -> str:
        return self.address

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_server(base: pathlib.Path, env: Mapping[str, str] | None = None, args: Sequence[str] = ()) -> WfmServer:
    """Starts `wfm serve` (with extra ``args``) on a free port and waits for its `wfm listening on` line."""
    data_dir = base / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = base / "wfm.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("WFM_") or k == "WFM_BIN"}
    full_env.update(env or {})
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(wfm_bin()), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            env=full_env,
        )
    assert proc.stdout is not None
    line = b""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                proc.kill()
                pytest.fail(f"wfm did not print its address in {STARTUP_TIMEOUT}s:\n{log_path.read_text()}")
            chunk = os.read(proc.stdout.fileno(), 1)
            if not chunk:
                proc.wait(5)
                pytest.fail(f"wfm exited ({proc.returncode}) before listening:\n{log_path.read_text()}")
            line += chunk
    m = LISTEN_RE.match(line.decode())
    if not m:
        proc.kill()
        pytest.fail(f"unexpected first stdout line from wfm: {line!r}")

    # Keep draining stdout so the server can never block on a full pipe.
    def drain() -> None:
        try:
            while proc.stdout is not None and proc.stdout.read(65536):
                pass
        except (OSError, ValueError):
            pass

    threading.Thread(target=drain, daemon=True).start()
    return WfmServer(proc, m.group(1), data_dir, log_path)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WfmServer]:
    srv = start_server(tmp_path_factory.mktemp("wfm"))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WfmServer]:
    """A server whose inputs may be at most 1000 bytes (as JSON)."""
    srv = start_server(tmp_path_factory.mktemp("wfm-limited"), {"WFM_LIMITS__MAX_INPUT_BYTES": "1000"})
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def client(server: WfmServer) -> Iterator[Client]:
    with Client(server.target, timeout=10) as c:
        yield c


@pytest.fixture
def name() -> str:
    """A workflow name no other test uses."""
    return f"wf-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def echo_wf(client: Client) -> str:
    n = f"echo-{uuid.uuid4().hex[:8]}"
    client.register(n, type="echo")
    return n


@pytest.fixture(scope="session")
def sleep_wf(client: Client) -> str:
    n = f"sleep-{uuid.uuid4().hex[:8]}"
    client.register(n, type="sleep")
    return n
