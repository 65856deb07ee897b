"""What scoring outliers at serving time costs: server CPU per request and throughput, builds alternated.

The model and bodies of ``serving.py``, in a project that has a monitor of the
model (so ``conveyor serve`` scores every logged row with its outlier detector).
Builds are ``LABEL=SRC[:nolog|:nooutliers]`` (``git archive COMMIT src | tar -x -C
DIR`` gives an older one), served one at a time and alternated for ``--rounds``
rounds; the server's CPU seconds per answered request (process and workers,
user + system, which includes the log writer's thread where the scoring runs)
move much less than requests per second on a shared machine.

Then, in this process, the writer's side alone: the time to score a segment of
log rows (``OutlierWatch.annotate``) against the time to write that segment
(``PredictionLog.append_columns``), alternated, medians of ``--repeats``.

    git -C /work/main archive HEAD src | tar -x -C /tmp/before
    .venv-bench/bin/python benchmarks/serving_outliers.py before=/tmp/before/src \\
        outliers=src no-outliers=src:nooutliers no-log=src:nolog
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import psutil
from serving import FEATURES, load, server_log, stop, train, wait_ready
from serving_cpu import SETUP, cpu_seconds

MEASURES = {"1x16": (1, 16), "100x16": (100, 16)}
MONITOR = "cv.monitoring.create_monitor('clf', model='clf@champion', reference=frame)\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("builds", nargs="+", metavar="LABEL=SRC[:nolog|:nooutliers]")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--writer-only", action="store_true", help="only the writer's side (no servers)")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    model, frame = train()
    if args.writer_only:
        writer_side(frame, args.repeats)
        return
    out: list[dict[str, Any]] = []
    print(f"load average at the start {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-serving-outliers-") as tmp:
        folder = Path(tmp)
        home = folder / "cv"
        home.mkdir()
        bodies = {}
        for name, (rows, _) in MEASURES.items():
            bodies[name] = folder / f"body-{rows}.json"
            bodies[name].write_text(json.dumps({"dataframe_split": {"columns": FEATURES,
                                                                    "data": frame.head(rows).values.tolist()}}))
        blob = home / "model.pkl"
        blob.write_bytes(pickle.dumps((model, frame)))
        env = {**os.environ, "CONVEYOR_HOME": str(home)}
        newest = args.builds[-1].partition("=")[2].partition(":")[0]
        subprocess.run([sys.executable, "-c", SETUP + MONITOR, str(blob)], env={**env, "PYTHONPATH": newest},
                       check=True)
        for _ in range(args.rounds):
            for build in args.builds:
                label, _, spec = build.partition("=")
                src, _, mode = spec.partition(":")
                extra = {"nolog": ["--no-log"], "nooutliers": ["--no-outliers"]}.get(mode, [])
                cmd = [sys.executable, "-m", "conveyor.cli.main", "serve", "models:/clf@champion", "--port", "18087",
                       "--project", "bench", "--max-batch-size", "256", *extra]
                proc = subprocess.Popen(cmd, env={**env, "PYTHONPATH": src}, stdout=server_log(folder, label),
                                        stderr=subprocess.STDOUT)
                try:
                    wait_ready("http://127.0.0.1:18087/ready", proc)
                    procs = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
                    scoring = (httpx.get("http://127.0.0.1:18087/v1/models/clf").json().get("outliers") or {}) \
                        .get("clf", {}).get("monitor")
                    for name, (_, concurrency) in MEASURES.items():
                        before = cpu_seconds(procs)
                        got = load("http://127.0.0.1:18087/invocations", bodies[name], concurrency, args.duration)
                        per_request = (cpu_seconds(procs) - before) / max(1, got["requests"]) * 1e6
                        out.append({"build": label, "measure": name, "cpu_us_per_request": per_request,
                                    "scored_by": scoring, **got})
                        print(f"  {label:<12} {name:<7} {got['rps']:>8,.0f} req/s  p50 {got['p50_ms']:7.2f} ms  "
                              f"p99 {got['p99_ms']:7.2f} ms  errors {got['errors']}  "
                              f"server CPU {per_request:>7,.0f} us/request  outliers by {scoring}", flush=True)
                finally:
                    stop(proc)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    print(f"\n{'build':<14}{'measure':<9}{'median req/s':>14}{'median CPU us/request':>24}")
    labels = list(dict.fromkeys(b.partition("=")[0] for b in args.builds))
    for name in MEASURES:
        for label in labels:
            mine = [r for r in out if r["build"] == label and r["measure"] == name]
            print(f"{label:<14}{name:<9}{statistics.median(r['rps'] for r in mine):>14,.0f}"
                  f"{statistics.median(r['cpu_us_per_request'] for r in mine):>24,.0f}")
    writer = writer_side(frame, args.repeats)
    if args.json:
        Path(args.json).write_text(json.dumps({"servers": out, "writer": writer}, indent=2) + "\n")


def writer_side(frame: Any, repeats: int) -> list[dict[str, Any]]:
    """Scoring a segment against writing it, in this process: what the writer's thread pays."""
    import time

    import numpy as np

    from conveyor.core.ids import now_ms
    from conveyor.monitoring.outliers import OutlierDetector
    from conveyor.serving.live import LiveModel
    from conveyor.serving.outliers import OutlierWatch, Scorer
    from conveyor.stores.artifacts.local import LocalBackend
    from conveyor.stores.predictions import PredictionLog

    detector = OutlierDetector.fit(frame, columns=FEATURES)
    watch = OutlierWatch(None, [LiveModel(None, "models:/clf/1")])  # no store: the scorer is set here
    watch.scorers = {1: Scorer("m1", "clf", detector, detector.columns, detector.fingerprint)}
    results = []
    print(f"\n{'rows':>9}{'write ms':>11}{'score ms':>11}{'score / write':>15}{'score us/row':>14}")
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-outlier-writer-") as tmp:
        log = PredictionLog(LocalBackend(tmp))
        for n in (1_000, 100_000):
            x = np.resize(frame[FEATURES].to_numpy(), (n, len(FEATURES)))
            columns = {**{f: x[:, i] for i, f in enumerate(FEATURES)}, "_request_id": [f"r{i}" for i in range(n)],
                       "_ts": np.full(n, now_ms()), "_version": np.ones(n, dtype=np.int64),
                       "_latency_ms": np.ones(n), "_variant": ["primary"] * n, "_row": np.zeros(n, dtype=np.int32),
                       "_prediction": np.zeros(n)}
            write, score = [], []
            for _ in range(repeats):
                started = time.perf_counter()
                log.append_columns("clf", columns)
                write.append(time.perf_counter() - started)
                started = time.perf_counter()
                watch.annotate(columns)
                score.append(time.perf_counter() - started)
            w, s = statistics.median(write) * 1000, statistics.median(score) * 1000
            results.append({"rows": n, "write_ms": w, "score_ms": s})
            print(f"{n:>9,}{w:>11.2f}{s:>11.2f}{s / w:>14.0%}{s * 1000 / n:>14.2f}")
    return results


if __name__ == "__main__":
    main()
