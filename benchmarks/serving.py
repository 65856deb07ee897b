"""Serving, Conveyor against ``mlflow models serve``, side by side in one run.

The same scikit-learn LogisticRegression (20 features) is logged to both tools
with the same input example (so both have its signature and check each request
against it) and served with one worker each; the same load generator (``_load.py``, its own
process) sends the same ``/invocations`` body (``dataframe_split``) to both:
single rows at concurrency 1, 16 and 64, then 100-row and 1,000-row requests at
concurrency 16. Conveyor is also measured with prediction logging off, to show
what logging costs: once in sequence like the rest, and once interleaved (both
servers up, short alternating bursts), which is the figure to trust on a machine
whose load moves between measures.

    .venv-bench/bin/python benchmarks/serving.py              # 20 s per measure, ~8 min
    .venv-bench/bin/python benchmarks/serving.py --quick      # 5 s per measure
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
from _common import machine, quiet_mlflow

HERE = Path(__file__).resolve().parent
FEATURES = [f"f{i}" for i in range(20)]


def train() -> tuple[Any, Any]:
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    x, y = make_classification(n_samples=5000, n_features=20, random_state=0)
    frame = pd.DataFrame(x, columns=FEATURES)
    return LogisticRegression(max_iter=500).fit(frame, y), frame


def server_log(folder: Path, name: str) -> Any:
    """Where a server's output goes: a file, never an unread pipe (a full pipe stalls the server)."""
    return open(folder / f"{name}.log", "wb")  # noqa: SIM115 (closed when the process ends)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}; see its log next to the model")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not become ready")


def start_conveyor(home: Path, model: Any, frame: Any, port: int, log: bool) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CONVEYOR_HOME": str(home)}
    setup = (
        "import pickle, sys, conveyor as cv\n"
        "model, frame = pickle.load(open(sys.argv[1], 'rb'))\n"
        "cv.set_project('bench')\n"
        "with cv.start_run():\n"
        "    cv.log_model(model, name='clf', input_example=frame.head(5))\n"
        "cv.models.set_alias('clf', 'champion', version=1)\n"
    )
    import pickle

    blob = home / "model.pkl"
    home.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(pickle.dumps((model, frame)))
    if not (home / "conveyor.db").exists():
        subprocess.run([sys.executable, "-c", setup, str(blob)], env=env, check=True)
    args = [sys.executable, "-m", "conveyor.cli.main", "serve", "models:/clf@champion", "--port", str(port),
            "--project", "bench", "--max-batch-size", "256"]
    if not log:
        args.append("--no-log")
    proc = subprocess.Popen(args, env=env, stdout=server_log(home, f"conveyor-{port}"), stderr=subprocess.STDOUT)
    wait_ready(f"http://127.0.0.1:{port}/ready", proc)
    return proc


def start_mlflow(root: Path, model: Any, frame: Any, port: int) -> subprocess.Popen[bytes]:
    mlflow = quiet_mlflow()
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    # Its artifacts go in the temporary folder too, not in ./mlruns of whoever runs the benchmark.
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("bench", artifact_location=(root / "mlartifacts").as_uri()))
    # The same input example as Conveyor's, so MLflow has the same signature and checks requests
    # against it as Conveyor does (without one it skips its schema enforcement, about 2.5x cheaper).
    # The warning silenced is its hint that the integer output column cannot hold nulls.
    with mlflow.start_run(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        info = mlflow.sklearn.log_model(model, name="model", input_example=frame.head(5))
    # MLflow starts ``uvicorn`` by name: the virtualenv's bin folder must be on PATH.
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    proc = subprocess.Popen([mlflow_bin, "models", "serve", "-m", info.model_uri, "-p", str(port), "-h", "127.0.0.1",
                             "--env-manager", "local", "-w", "1"], env=env, stdout=server_log(root, "mlflow"),
                            stderr=subprocess.STDOUT)
    wait_ready(f"http://127.0.0.1:{port}/ping", proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def load(url: str, body: Path, concurrency: int, duration: float, warmup: float = 1.0) -> dict[str, float]:
    out = subprocess.run([sys.executable, str(HERE / "_load.py"), url, str(body), "--concurrency", str(concurrency),
                          "--duration", str(duration), "--warmup", str(warmup)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def interleaved_logging_cost(folder: Path, model: Any, frame: Any, body: Path, duration: float,
                             slices: int = 10) -> dict[str, Any]:
    """Logging on and off, both servers up, alternating short bursts: the load of the machine hits both alike.

    The cost is one minus the median of the per-burst ratios (on/off), so a burst
    that another process's spike hit does not decide it.
    """
    procs = {True: start_conveyor(folder / "cv", model, frame, 18084, log=True),
             False: start_conveyor(folder / "cv", model, frame, 18085, log=False)}
    totals = {True: [0.0, 0.0], False: [0.0, 0.0]}  # requests, seconds
    ratios = []
    try:
        for i in range(slices):
            got = {}
            for logged in ((True, False) if i % 2 == 0 else (False, True)):
                got[logged] = load(f"http://127.0.0.1:{18084 if logged else 18085}/invocations", body, 16,
                                   duration / slices, warmup=0.3)
                totals[logged][0] += got[logged]["requests"]
                totals[logged][1] += got[logged]["seconds"]
            ratios.append(got[True]["rps"] / got[False]["rps"])
    finally:
        for proc in procs.values():
            stop(proc)
    on, off = totals[True][0] / totals[True][1], totals[False][0] / totals[False][1]
    return {"rps_log": on, "rps_no_log": off, "cost": 1 - statistics.median(ratios), "slice_ratios": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 s per measure instead of 20")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    duration = 5.0 if args.quick else 20.0
    info = machine()
    print(f"{info['date']}  {info['cpus']} CPUs ({info['cpu_model']})  Python {info['python']}  "
          f"mlflow {info['mlflow']}  load {info['load_average_1m']}")
    model, frame = train()
    measures = [("1 row, concurrency 1", 1, 1), ("1 row, concurrency 16", 1, 16), ("1 row, concurrency 64", 1, 64),
                ("100 rows, concurrency 16", 100, 16), ("1,000 rows, concurrency 16", 1000, 16)]
    results: dict[str, Any] = {"machine": info, "command": " ".join(sys.argv), "duration_s": duration, "rows": {}}
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-serving-") as tmp:
        folder = Path(tmp)
        bodies = {}
        for rows in {m[1] for m in measures}:
            body = folder / f"body-{rows}.json"
            body.write_text(json.dumps({"dataframe_split": {"columns": FEATURES,
                                                            "data": frame.head(rows).values.tolist()}}))
            bodies[rows] = body
        servers = {
            "conveyor": lambda: start_conveyor(folder / "cv", model, frame, 18081, log=True),
            "conveyor (no log)": lambda: start_conveyor(folder / "cv", model, frame, 18082, log=False),
            "mlflow": lambda: start_mlflow(folder, model, frame, 18083),
        }
        ports = {"conveyor": 18081, "conveyor (no log)": 18082, "mlflow": 18083}
        for tool, start in servers.items():
            proc = start()
            try:
                for label, rows, conc in measures:
                    if tool == "conveyor (no log)" and rows != 1:
                        continue
                    got = load(f"http://127.0.0.1:{ports[tool]}/invocations", bodies[rows], conc, duration)
                    results["rows"].setdefault(label, {})[tool] = got
                    print(f"  {tool:<18} {label:<28} {got['rps']:>9,.0f} req/s  p50 {got['p50_ms']:7.2f} ms  "
                          f"p99 {got['p99_ms']:7.2f} ms  errors {got['errors']}", flush=True)
            finally:
                stop(proc)
        results["logging_interleaved"] = interleaved_logging_cost(folder, model, frame, bodies[1], 2 * duration)
    print()
    print(f"{'measure':<28}{'Conveyor req/s':>16}{'MLflow req/s':>14}{'speed-up':>10}{'rows/s (Conveyor)':>20}"
          f"{'p99 Conveyor':>14}{'p99 MLflow':>12}")
    for label, rows, _ in measures:
        cv_, ml = results["rows"][label]["conveyor"], results["rows"][label]["mlflow"]
        print(f"{label:<28}{cv_['rps']:>16,.0f}{ml['rps']:>14,.0f}{cv_['rps'] / ml['rps']:>9.1f}x"
              f"{cv_['rps'] * rows:>20,.0f}{cv_['p99_ms']:>12.1f}ms{ml['p99_ms']:>10.1f}ms")
    on = results["rows"]["1 row, concurrency 16"]
    cost = 1 - on["conveyor"]["rps"] / on["conveyor (no log)"]["rps"]
    print(f"prediction logging costs {cost:.1%} of throughput at concurrency 16, measured in sequence")
    mixed = results["logging_interleaved"]
    print(f"prediction logging costs {mixed['cost']:.1%} of throughput at concurrency 16, interleaved "
          f"(median of the per-burst ratios on/off: {' '.join(f'{r:.2f}' for r in mixed['slice_ratios'])}; "
          f"totals {mixed['rps_log']:,.0f} vs {mixed['rps_no_log']:,.0f} req/s) (goal < 10%)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
