"""The prediction log: segments by model and day, labels joined later, on a folder and on S3."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from conveyor.core.errors import InvalidArgument
from conveyor.stores.artifacts.local import LocalBackend
from conveyor.stores.predictions import DAY, PredictionLog, PredictionLogWriter

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> PredictionLog:
    if request.param == "local":
        return PredictionLog(LocalBackend(str(tmp_path / "artifacts")))
    from conveyor.stores.artifacts.s3 import S3Backend

    return PredictionLog(S3Backend(request.getfixturevalue("s3_bucket_uri")))


def rows(n: int, start: int, version: int = 1, prefix: str = "r") -> list[dict[str, Any]]:
    return [
        {"_request_id": f"{prefix}{i}", "_ts": start + i * 1000, "_version": version,
         "_latency_ms": 1.5, "_prediction": float(i), "temp": 0.1 * i, "season": i % 4 + 1}
        for i in range(n)
    ]


def test_windows_versions_and_late_labels(log: PredictionLog) -> None:
    log.append("bike-demand", rows(5, T0))
    log.append("bike-demand", rows(5, T0 + 2 * DAY, version=2, prefix="s"))
    log.append("other-model", rows(3, T0))
    everything = log.read("bike-demand")
    assert len(everything) == 10 and list(everything["_ts"]) == sorted(everything["_ts"])
    assert set(everything["_model"]) == {"bike-demand"}
    window = log.read("bike-demand", start_ms=T0 + DAY, end_ms=T0 + 3 * DAY)
    assert list(window["_request_id"]) == [f"s{i}" for i in range(5)]
    assert list(log.read("bike-demand", version=1)["_request_id"]) == [f"r{i}" for i in range(5)]
    assert window["_label"].isna().all()
    # Labels arrive days later; the newest label for a request wins.
    log.add_feedback("bike-demand", [("s1", 10.0, T0 + 5 * DAY), ("s2", 20.0, T0 + 5 * DAY)])
    log.add_feedback("bike-demand", [("s1", 11.0, T0 + 6 * DAY)])
    window = log.read("bike-demand", start_ms=T0 + DAY, end_ms=T0 + 3 * DAY)
    labels = dict(zip(window["_request_id"], window["_label"], strict=True))
    assert labels["s1"] == 11.0 and labels["s2"] == 20.0 and labels["s0"] != labels["s0"]  # NaN
    assert len(log.read("nothing-here")) == 0


def test_bad_rows_are_refused_and_mixed_types_are_kept_as_text(log: PredictionLog) -> None:
    with pytest.raises(InvalidArgument, match="_request_id"):
        log.append("m", [{"_ts": T0}])
    with pytest.raises(InvalidArgument, match="model"):
        log.append("../escape", rows(1, T0))
    with pytest.raises(InvalidArgument, match="request_id"):
        log.add_feedback("m", [("", 1.0)])
    mixed = rows(2, T0)
    mixed[1]["season"] = "summer"
    log.append("m", mixed)
    assert list(log.read("m")["season"]) == ["1", "summer"]


def test_the_writer_batches_off_the_request_path(tmp_path: Path) -> None:
    log = PredictionLog(LocalBackend(str(tmp_path)))
    writer = PredictionLogWriter(log, interval=60, max_rows=10_000)

    def serve(n: int) -> None:
        for row in rows(250, T0, prefix=f"t{n}-"):
            writer.add("bike-demand", row)

    threads = [threading.Thread(target=serve, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(log.read("bike-demand")) == 0  # nothing written yet: the interval is long
    writer.close()
    df = log.read("bike-demand")
    assert len(df) == 1000 and df["_request_id"].is_unique
    assert len(list(log.backend.list("predictions/bike-demand/"))) == 1  # one segment


def test_a_failed_write_keeps_the_rows_for_the_next_flush(tmp_path: Path) -> None:
    log = PredictionLog(LocalBackend(str(tmp_path)))
    blocker = tmp_path / "predictions"
    blocker.write_text("a file where the log's folder should be")
    writer = PredictionLogWriter(log, interval=60)
    for row in rows(3, T0):
        writer.add("m", row)
    writer.flush()  # fails: logged, rows kept
    blocker.unlink()
    writer.add("m", rows(1, T0 + 5000, prefix="late")[0])
    writer.close()
    assert list(log.read("m")["_request_id"]) == ["r0", "r1", "r2", "late0"]


def test_error_rows_stay_out_of_reads_and_make_the_error_rate(log: PredictionLog) -> None:
    log.append("m", rows(4, T0))  # an older segment: no _row, no _error columns; each row one request
    answered = [{"_request_id": f"q:{k}", "_ts": T0 + 10_000, "_version": 2, "_row": k, "_prediction": 1.0,
                 "temp": 0.5} for k in range(3)]  # one 3-row request
    log.append("m", answered)
    errors = [
        {"_request_id": "e1", "_ts": T0 + 20_000, "_version": 2, "_row": 0, "_error": "ValueError: bad hour"},
        {"_request_id": "e2", "_ts": T0 + 20_000, "_version": 1, "_row": 0, "_error": "TimeoutError"},
        {"_request_id": "e3", "_ts": T0 + 20_000, "_version": None, "_row": 0, "_error": "Overloaded: not loaded"},
        {"_request_id": "e4", "_ts": T0 + 5 * DAY, "_version": 2, "_row": 0, "_error": "ValueError: later"},
    ]
    log.append("m", errors)
    df = log.read("m")
    assert len(df) == 7 and "_error" not in df.columns and df["_prediction"].notna().all()
    with_errors = log.read("m", include_errors=True)
    assert len(with_errors) == 11 and with_errors["_error"].notna().sum() == 4
    assert len(log.read("m", version=2, include_errors=True)) == 5
    rates = log.error_rates("m", T0, T0 + DAY)
    assert {v: (r.answered, r.failed) for v, r in rates.items()} == {1: (4, 1), 2: (1, 1), None: (0, 1)}
    assert rates[1].rate == pytest.approx(0.2) and rates[2].rate == 0.5 and rates[2].requests == 2
    assert log.error_rates("m", T0, T0 + DAY, version=2) == {2: rates[2]}
    assert log.error_rates("m", version=2)[2].failed == 2  # no window: everything
    assert log.error_rate("m", T0, T0 + DAY, version=1) == pytest.approx(0.2)  # what the agent reads
    assert log.error_rate("m", T0, T0 + DAY) == pytest.approx(3 / 8)  # every version
    assert log.error_rate("m", T0, T0 + DAY, version=7) == 0.0
    assert log.error_rates("m", T0 + 2 * DAY, T0 + 3 * DAY) == {}
    assert log.error_rates("nothing-here") == {} and log.error_rate("nothing-here") == 0.0
