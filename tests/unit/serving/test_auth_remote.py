"""Serving against a remote tracking server checks callers' tokens through the server's /whoami."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.core.errors import BackendUnavailable, PermissionDenied, Unauthenticated
from conveyor.server.config import ServerConfig
from conveyor.serving.auth import TokenGate
from conveyor.stores.metadata.rest import RestMetadataStore
from conveyor.stores.metadata.sql.store import SqlMetadataStore
from conveyor.testing.server import serve


def test_tokens_are_checked_by_the_remote_server(tmp_path: Path) -> None:
    import asyncio

    uri = f"sqlite:///{tmp_path / 'server.db'}"
    store = SqlMetadataStore(uri)
    gov = store.governance
    admin = gov.create_principal("root", admin=True).token
    viewer = gov.create_principal("vera").token
    gov.grant("vera", project="bikes", role="viewer")
    revoked = gov.create_token("vera", name="old")
    gov.revoke_token(revoked.info.id)
    store.close()
    with serve(ServerConfig(backend=uri, artifacts=str(tmp_path / "artifacts"), auth=True)) as url:
        remote = RestMetadataStore(url, token=admin)
        try:
            gate = TokenGate.for_store(remote, "bikes", cache_seconds=0)
            principal = gate.principal(viewer)
            assert principal is not None and principal.name == "vera" and principal.roles == {"bikes": "viewer"}
            assert gate.principal(revoked.token) is None and gate.principal("cvt_" + "x" * 43) is None
            assert asyncio.run(gate.require(f"Bearer {viewer}", "viewer")).name == "vera"
            with pytest.raises(PermissionDenied, match="editor"):
                asyncio.run(gate.require(f"Bearer {viewer}", "editor"))
            with pytest.raises(Unauthenticated):
                asyncio.run(gate.require(f"Bearer {revoked.token}", "viewer"))
        finally:
            remote.close()
    with serve(ServerConfig(backend=uri, artifacts=str(tmp_path / "artifacts"))) as url:  # auth off
        remote = RestMetadataStore(url)
        try:
            with pytest.raises(BackendUnavailable, match="does not check tokens"):
                TokenGate.for_store(remote, "bikes")
        finally:
            remote.close()
