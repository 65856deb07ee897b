"""Retries after lost responses: the write happened once, the client still succeeds once."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from conveyor.core.errors import BackendUnavailable, GateFailed, InvalidArgument, NotFound
from conveyor.core.ids import now_ms
from conveyor.server.config import ServerConfig
from conveyor.stores.metadata.rest import RestMetadataStore, error_from_response
from conveyor.testing.server import serve


class LossyProxy:
    """Forwards TCP to the server, but cuts the first ``drop`` connections as the answer starts.

    The server has finished the request (and committed it) by the time it answers, so
    the client sees exactly what a crash or network cut after the write looks like.
    """

    def __init__(self, upstream: str, drop: int) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.drop = drop
        self.cut = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            cut = self.cut < self.drop
            self.cut += cut
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, cut), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, cut: bool) -> None:
        try:
            while data := src.recv(65536):
                if cut:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    config = ServerConfig(backend=f"sqlite:///{tmp_path / 'db.sqlite'}", artifacts=str(tmp_path / "a"))
    with serve(config) as base:
        yield base


def test_a_metric_batch_whose_answer_was_lost_is_stored_once(url: str) -> None:
    direct = RestMetadataStore(url)
    run = direct.create_run(project="p")
    proxy = LossyProxy(url, drop=2)
    lossy = RestMetadataStore(proxy.url, retry_for=30)
    points = [(run.id, "loss", float(i), i, now_ms()) for i in range(1000)]
    lossy.log_metric_points(points)
    assert proxy.cut == 2  # two answers lost, the third attempt confirmed
    assert [p.step for p in direct.get_metric_history(run.id, "loss")] == list(range(1000))
    proxy.close()


def test_a_create_whose_answer_was_lost_creates_one_run(url: str) -> None:
    proxy = LossyProxy(url, drop=1)
    lossy = RestMetadataStore(proxy.url, retry_for=30)
    run = lossy.create_run(project="p", name="once")
    assert proxy.cut == 1
    found = RestMetadataStore(url).search_runs(["p"])
    assert [r.id for r in found] == [run.id]
    proxy.close()


def test_deletes_retried_after_they_happened_count_as_done(url: str) -> None:
    direct = RestMetadataStore(url)
    run = direct.create_run(project="p", tags={"a": "1"})
    proxy = LossyProxy(url, drop=1)
    RestMetadataStore(proxy.url, retry_for=30).delete_tag(run.id, "a")
    assert direct.get_run(run.id).tags == {}
    proxy2 = LossyProxy(url, drop=1)
    RestMetadataStore(proxy2.url, retry_for=30).delete_run(run.id)
    with pytest.raises(NotFound):
        direct.get_run(run.id)
    with pytest.raises(NotFound):  # without a lost answer, a missing record is still an error
        direct.delete_run(run.id)


def test_a_replayed_key_is_not_applied_twice(url: str) -> None:
    run = RestMetadataStore(url).create_run(project="p")
    body = {"points": [[run.id, "m", "NaN", 0, 1], [run.id, "m", "-Infinity", 1, 2]], "idempotency_key": "k" * 32}
    for _ in range(3):
        assert httpx.post(url + "/api/v1/metrics/batch", json=body).status_code == 204
    history = RestMetadataStore(url).get_metric_history(run.id, "m")
    assert [p.step for p in history] == [0, 1] and history[1].value == float("-inf")


def test_an_unreachable_server_is_a_backend_unavailable_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BackendUnavailable, match="conveyor server"):
        RestMetadataStore(f"http://127.0.0.1:{port}", retry_for=0.2).list_projects()


def test_error_bodies_map_back_to_the_same_classes() -> None:
    body = b'{"error": {"code": "BAD_FILTER", "message": "m", "field": "filter", "position": 3, "text": "x"}}'
    exc = error_from_response(400, body)
    assert type(exc).__name__ == "FilterSyntaxError" and exc.position == 3  # type: ignore[attr-defined]
    assert isinstance(error_from_response(422, b'{"error": {"code": "INVALID_BODY", "message": "m"}}'), InvalidArgument)
    assert isinstance(error_from_response(502, b"<html>bad gateway</html>"), Exception)
    refused = GateFailed("version 2 did not beat the champion", report={"passed": False, "checks": []})
    back = error_from_response(refused.http_status, msgspec.json.encode(refused.to_dict()))
    assert type(back) is GateFailed and back.report == refused.report and back.field == "gate"


def test_blob_uploads_and_downloads_survive_a_cut_connection(url: str, tmp_path: Path) -> None:
    from conveyor.stores.artifacts.cas import ContentStore
    from conveyor.stores.artifacts.http import HttpBackend

    data = bytes(range(256)) * 4096
    source = tmp_path / "weights.bin"
    source.write_bytes(data)
    proxy = LossyProxy(url, drop=3)  # the first three connections are cut, whatever they carry
    store = ContentStore(HttpBackend(proxy.url))
    blob = store.put_file(source)
    run = RestMetadataStore(url).create_run(project="p")
    httpx.post(f"{url}/api/v1/runs/{run.id}/artifacts",
               json={"files": [{"path": "w.bin", "digest": blob.digest, "size": blob.size}]})
    assert store.get_file(blob.digest, tmp_path / "back.bin").read_bytes() == data
    assert proxy.cut == 3
    proxy.close()


def test_registry_writes_whose_answers_were_lost_apply_once(url: str) -> None:
    direct = RestMetadataStore(url)
    lossy_stores = []

    def lossy() -> RestMetadataStore:
        proxy = LossyProxy(url, drop=1)
        lossy_stores.append(proxy)
        return RestMetadataStore(proxy.url, retry_for=30)

    digest = "blake3:" + "ab" * 32
    for _ in range(3):
        mv = lossy().registry.create_version("p", "m", flavour="sklearn", format="pickle", package_digest=digest,
                                             signature=None, info={})
    assert mv.version == 3  # three registrations, three versions: no retry registered a fourth
    assert lossy().registry.create_model("p", "other").name == "other"  # not AlreadyExists on the retry
    for version in (1, 2, 3):
        direct.registry.set_alias("p", "m", "champion", version)
    assert lossy().registry.set_alias("p", "m", "shadow", 1) is None  # the first attempt's answer
    assert lossy().registry.rollback_alias("p", "m", "champion") == (3, 2)  # one step back, not two
    assert direct.registry.get_model("p", "m").aliases == {"champion": 2, "shadow": 1}
    gate = lossy().registry.record_gate("p", "m", 3, "champion", champion_version=2, passed=True, forced=False,
                                        reason="", report={"rules": []}, move_alias=True)
    assert [e.id for e in direct.registry.list_gate_evaluations("p", "m")] == [gate.id]
    assert direct.registry.get_model("p", "m").aliases["champion"] == 3
    assert all(proxy.cut == 1 for proxy in lossy_stores)
    for proxy in lossy_stores:
        proxy.close()


def test_monitor_and_dataset_writes_whose_answers_were_lost_apply_once(url: str) -> None:
    from conveyor.testing.contracts.monitors import MonitorStoreContract, result

    direct = RestMetadataStore(url)
    proxies = [LossyProxy(url, drop=1) for _ in range(4)]
    stores = [RestMetadataStore(p.url, retry_for=30) for p in proxies]
    made = MonitorStoreContract().make(stores[0].monitors)
    recorded = stores[1].monitors.record_result(made.id, result("drift"))
    assert recorded.change == "opened"  # the retry answers what the first attempt did
    assert len(direct.monitors.list_results(made.id)) == 1 and len(direct.monitors.list_incidents(made.id)) == 1
    assert recorded.incident is not None
    stores[2].monitors.add_deliveries(recorded.incident.id, [{"channel": "log", "ok": True}])
    assert len(direct.monitors.list_incidents(made.id)[0].deliveries) == 1
    check = stores[3].datasets.record_check(dataset="d", version=None, target="x.csv", suite="s", ok=True,
                                            num_failures=0, report={})
    assert [c.id for c in direct.datasets.list_checks("d")] == [check.id]
    assert all(p.cut == 1 for p in proxies)
    for p in proxies:
        p.close()
