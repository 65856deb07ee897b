"""Server CPU time per request of ``conveyor serve`` builds, side by side: before/after on a busy machine.

Throughput on a 2-core machine shared with other work moves 2x between runs; the
CPU seconds the server process spends per answered request move much less, so
this is the figure to compare two versions of the code with. Each build is a
``src`` folder put on ``PYTHONPATH`` (``git archive COMMIT src | tar -x -C DIR``
gives an older one); add ``:nolog`` to serve it with ``--no-log``. Builds are
alternated for ``--rounds`` rounds with the same model, bodies and load
generator as ``serving.py``.

    .venv-bench/bin/python benchmarks/serving_cpu.py before=/tmp/old/src after=src after-nolog=src:nolog
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil
from serving import FEATURES, load, server_log, stop, train, wait_ready

MEASURES = {"1x1": (1, 1), "1x16": (1, 16), "1x64": (1, 64), "100x16": (100, 16), "1000x16": (1000, 16)}
SETUP = (
    "import pickle, sys, conveyor as cv\n"
    "model, frame = pickle.load(open(sys.argv[1], 'rb'))\n"
    "cv.set_project('bench')\n"
    "with cv.start_run():\n"
    "    cv.log_model(model, name='clf', input_example=frame.head(5))\n"
    "cv.models.set_alias('clf', 'champion', version=1)\n"
)


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("builds", nargs="+", metavar="LABEL=SRC[:nolog]")
    parser.add_argument("--measures", default="1x1,1x16,100x16,1000x16", help=f"of {', '.join(MEASURES)}")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    measures = args.measures.split(",")
    model, frame = train()
    out: list[dict[str, Any]] = []
    print(f"load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-serving-cpu-") as tmp:
        folder = Path(tmp)
        home = folder / "cv"
        home.mkdir()
        bodies = {}
        for name in measures:
            rows = MEASURES[name][0]
            bodies[name] = folder / f"body-{rows}.json"
            bodies[name].write_text(json.dumps({"dataframe_split": {"columns": FEATURES,
                                                                    "data": frame.head(rows).values.tolist()}}))
        blob = home / "model.pkl"
        blob.write_bytes(pickle.dumps((model, frame)))
        first_src = args.builds[0].partition("=")[2].removesuffix(":nolog")
        env = {**os.environ, "CONVEYOR_HOME": str(home)}
        subprocess.run([sys.executable, "-c", SETUP, str(blob)], env={**env, "PYTHONPATH": first_src}, check=True)
        for _ in range(args.rounds):
            for build in args.builds:
                label, _, src = build.partition("=")
                nolog = src.endswith(":nolog")
                cmd = [sys.executable, "-m", "conveyor.cli.main", "serve", "models:/clf@champion", "--port", "18086",
                       "--project", "bench", "--max-batch-size", "256", *(["--no-log"] if nolog else [])]
                proc = subprocess.Popen(cmd, env={**env, "PYTHONPATH": src.removesuffix(":nolog")},
                                        stdout=server_log(folder, label), stderr=subprocess.STDOUT)
                try:
                    wait_ready("http://127.0.0.1:18086/ready", proc)
                    procs = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
                    for name in measures:
                        rows, concurrency = MEASURES[name]
                        before = cpu_seconds(procs)
                        got = load("http://127.0.0.1:18086/invocations", bodies[name], concurrency, args.duration)
                        per_request = (cpu_seconds(procs) - before) / max(1, got["requests"]) * 1e6
                        out.append({"build": label, "measure": name, "cpu_us_per_request": per_request, **got})
                        print(f"  {label:<14} {name:<8} {got['rps']:>8,.0f} req/s  p50 {got['p50_ms']:7.2f} ms  "
                              f"p99 {got['p99_ms']:7.2f} ms  errors {got['errors']}  "
                              f"server CPU {per_request:>7,.0f} us/request", flush=True)
                finally:
                    stop(proc)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
