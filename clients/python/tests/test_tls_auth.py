"""The client over TLS with bearer tokens, against a real `wfm serve` with auth and TLS on.

The certificate (a throwaway CA and a server certificate for 127.0.0.1) and the tokens
come from scripts/tls-test-setup.sh, which uses openssl and `wfm token create`.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
from collections.abc import Iterator

import grpc
import pytest

from wfm_client import Client, PermissionDeniedError, UnauthenticatedError

from .conftest import REPO_ROOT, WfmServer, start_server, wfm_bin


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WfmServer, pathlib.Path]]:
    pki = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "tls-test-setup.sh"), str(pki)],
        check=True,
        env={**os.environ, "WFM_BIN": str(wfm_bin())},
    )
    srv = start_server(tmp_path_factory.mktemp("wfm-tls"), args=["--config", str(pki / "wfm.toml")])
    yield srv, pki
    srv.stop()


def connect(secured: tuple[WfmServer, pathlib.Path], token: str | None) -> Client:
    srv, pki = secured
    credentials = grpc.ssl_channel_credentials(root_certificates=(pki / "ca.pem").read_bytes())
    return Client(srv.address, credentials=credentials, token=token, timeout=20)


def token(secured: tuple[WfmServer, pathlib.Path], role: str) -> str:
    return (secured[1] / f"{role}.token").read_text().strip()


def test_no_token_is_unauthenticated(secured: tuple[WfmServer, pathlib.Path]) -> None:
    with connect(secured, None) as c:
        with pytest.raises(UnauthenticatedError) as err:
            list(c.list())
        assert "missing bearer token" in err.value.message


def test_a_wrong_token_is_unauthenticated(secured: tuple[WfmServer, pathlib.Path]) -> None:
    with connect(secured, "wfm_not-a-real-token") as c:
        with pytest.raises(UnauthenticatedError):
            list(c.list())


def test_a_reader_lists_but_may_not_register(secured: tuple[WfmServer, pathlib.Path]) -> None:
    with connect(secured, token(secured, "reader")) as c:
        assert isinstance(list(c.list()), list)
        with pytest.raises(PermissionDeniedError) as err:
            c.register("py-tls-denied", type="echo")
        assert "Register needs the admin role" in err.value.message


def test_an_admin_registers_and_executes_over_tls(secured: tuple[WfmServer, pathlib.Path]) -> None:
    with connect(secured, token(secured, "admin")) as c:
        registered = c.register("py-tls-echo", type="echo")
        assert registered.workflow.name == "py-tls-echo"
        result = c.run("py-tls-echo", {"over": "tls"})
        assert result.success
        assert result.output == {"over": "tls"}
    # The reader now sees it.
    with connect(secured, token(secured, "reader")) as c:
        assert "py-tls-echo" in [w.name for w in c.list()]


def test_plaintext_is_refused(secured: tuple[WfmServer, pathlib.Path]) -> None:
    srv, _ = secured
    with Client(srv.address, token=token(secured, "admin"), timeout=5) as c:
        with pytest.raises(Exception):
            list(c.list())
