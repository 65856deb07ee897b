"""Orchestration overhead: Conveyor pipelines vs Kedro's SequentialRunner and Prefect flows.

Two shapes of no-op steps, so only the orchestration is measured:

- a chain of N steps (each adds one to the previous output, so every step of a
  first run has new input and really runs; no cache hit inside one run),
- a fan-out: one source step and N independent consumers.

Each is run twice: first run, then a re-run with nothing changed. Conveyor and
Prefect (task cache policy INPUTS + TASK_SOURCE) serve the re-run from their
cache; Kedro has no cache, so its re-run is a second full run. Conveyor runs
in-process (its debugging executor) and with its default process pool; it
records every step as a tracked child run with lineage, in SQLite, which the
others do not do.

Run with the benchmark virtualenv, source first on the path::

    PYTHONPATH=src .venv-bench/bin/python benchmarks/pipeline_overhead.py           # N=100
    PYTHONPATH=src .venv-bench/bin/python benchmarks/pipeline_overhead.py --quick   # N=20

Goals (issue 5): < 5 ms overhead per step locally; a fully cached 100-step
re-run < 1 s. A tool that is not installed is reported as "-".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conveyor.pipelines import Pipeline, step
from conveyor.pipelines.graph import Const, Node, OutputRef, Param, ParamRef


@step
def noop(x: int) -> int:
    return x


@step
def inc(x: int) -> int:
    return x + 1


@step
def fan(x: int, i: int) -> int:
    return x + i


def conveyor_chain(n: int) -> Pipeline:
    nodes = [Node("s0", inc, (("x", ParamRef("start")),))]
    nodes += [Node(f"s{i}", inc, (("x", OutputRef(f"s{i - 1}")),)) for i in range(1, n)]
    return Pipeline("chain", tuple(nodes), (Param("start", int, 0),), (OutputRef(f"s{n - 1}"),))


def conveyor_fanout(n: int) -> Pipeline:
    nodes = [Node("source", noop, (("x", ParamRef("start")),))]
    nodes += [Node(f"f{i}", fan, (("x", OutputRef("source")), ("i", Const(str(i))))) for i in range(n)]
    return Pipeline("fanout", tuple(nodes), (Param("start", int, 0),))


def time_it(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_conveyor(n: int, root: Path, executor: str) -> dict[str, float]:
    import conveyor as cv

    results = {}
    for shape, build in (("chain", conveyor_chain), ("fanout", conveyor_fanout)):
        home = root / f"conveyor-{executor}-{shape}"
        cv.configure(uri=f"sqlite:///{home / 'db.sqlite'}", artifacts=str(home / "artifacts"))
        cv.search_runs()  # create the database outside the measurement
        pipe = build(n)
        spec: Any = executor
        if executor == "process":
            from conveyor.pipelines import ProcessExecutor

            spec = ProcessExecutor()
            for warm in [spec.submit(time.sleep, 0.3) for _ in range(spec.max_workers)]:
                warm.result()  # start the workers outside the measurement
        try:
            first = time_it(lambda p=pipe, e=spec: _check(p.run(executor=e, start=1)))
            again = time_it(lambda p=pipe, e=spec: _check(p.run(executor=e, start=1), cached=True))
        finally:
            if executor == "process":
                spec.shutdown()
        results[f"{shape} first"] = first
        results[f"{shape} cached"] = again
    return results


def _check(run: Any, cached: bool = False) -> None:
    if not run.ok:
        raise SystemExit(f"conveyor run failed: {[s.error for s in run.steps.values() if s.error]}")
    if cached and not all(s.cache_hit for s in run.steps.values()):
        raise SystemExit("conveyor re-run was not fully cached")


def bench_kedro(n: int) -> dict[str, float] | None:
    import logging

    try:
        from kedro.io import DataCatalog, MemoryDataset
        from kedro.pipeline import Pipeline as KPipeline
        from kedro.pipeline import node
        from kedro.runner import SequentialRunner
    except ImportError:
        return None
    # After the imports: importing kedro installs its rich INFO logging, a console line per
    # node load/save/run that would be timed as Kedro's orchestration.
    logging.getLogger("kedro").setLevel(logging.WARNING)

    def k_noop(x: int) -> int:
        return x

    def k_inc(x: int) -> int:
        return x + 1

    def k_fan(x: int, i: int) -> int:
        return x + i

    chain = KPipeline([node(k_inc, "d0" if i == 0 else f"d{i}", f"d{i + 1}", name=f"s{i}") for i in range(n)])
    fanout = KPipeline(
        [node(k_noop, "d0", "src", name="source")]
        + [node(k_fan, ["src", f"params:i{i}"], f"o{i}", name=f"f{i}") for i in range(n)]
    )

    def run(pipe: Any) -> None:
        datasets = {"d0": MemoryDataset(1), **{f"params:i{i}": MemoryDataset(i) for i in range(n)}}
        SequentialRunner().run(pipe, DataCatalog(datasets))

    results = {}
    for shape, pipe in (("chain", chain), ("fanout", fanout)):
        results[f"{shape} first"] = time_it(lambda p=pipe: run(p))
        results[f"{shape} cached"] = time_it(lambda p=pipe: run(p))  # no cache: a full run again
    return results


def bench_prefect(n: int, root: Path) -> dict[str, float] | None:
    os.environ.setdefault("PREFECT_HOME", str(root / "prefect"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("PREFECT_SERVER_ALLOW_EPHEMERAL_MODE", "true")
    # Its server starts in a subprocess (imports, database migrations) before any timing;
    # 20 s, the default, is not enough on 2 loaded cores.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no network here: it only logs errors
    try:
        from prefect import flow, task
        from prefect.cache_policies import INPUTS, TASK_SOURCE
    except ImportError:
        return None

    @task(cache_policy=INPUTS + TASK_SOURCE, persist_result=True)
    def p_noop(x: int) -> int:
        return x

    @task(cache_policy=INPUTS + TASK_SOURCE, persist_result=True)
    def p_inc(x: int) -> int:
        return x + 1

    @task(cache_policy=INPUTS + TASK_SOURCE, persist_result=True)
    def p_fan(x: int, i: int) -> int:
        return x + i

    @flow
    def chain(start: int) -> int:
        x = start
        for _ in range(n):
            x = p_inc(x)
        return x

    @flow
    def fanout(start: int) -> list[int]:
        src = p_noop(start)
        return [p_fan(src, i) for i in range(n)]

    @flow
    def warm() -> int:
        return 1

    warm()  # the ephemeral server starts here, outside the measurement
    results = {}
    for shape, fl in (("chain", chain), ("fanout", fanout)):
        results[f"{shape} first"] = time_it(lambda f=fl: f(1))
        results[f"{shape} cached"] = time_it(lambda f=fl: f(1))
    return results


def _guarded(name: str, fn: Callable[[], dict[str, float] | None]) -> dict[str, float] | None:
    """A peer tool that cannot run here is reported as missing, with the reason."""
    try:
        return fn()
    except Exception as exc:
        print(f"{name} could not run: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}", file=sys.stderr)
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="steps per pipeline (default 100)")
    parser.add_argument("--quick", action="store_true", help="20 steps, for a smoke run")
    parser.add_argument("--json", dest="json_path", default=None, help="write the results here")
    parser.add_argument("--skip", action="append", default=[], help="kedro, prefect or process")
    args = parser.parse_args()
    n = 20 if args.quick else args.steps
    root = Path(tempfile.mkdtemp(prefix="conveyor-bench-pipelines-"))
    os.environ["CONVEYOR_HOME"] = str(root / "home")
    try:
        tools: dict[str, dict[str, float] | None] = {
            "conveyor in-process": bench_conveyor(n, root, "inprocess"),
        }
        if "process" not in args.skip:
            tools["conveyor process pool"] = bench_conveyor(n, root, "process")
        if "kedro" not in args.skip:
            tools["kedro sequential"] = _guarded("kedro", lambda: bench_kedro(n))
        if "prefect" not in args.skip:
            tools["prefect local"] = _guarded("prefect", lambda: bench_prefect(n, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    measures = ["chain first", "chain cached", "fanout first", "fanout cached"]
    names = list(tools)
    print(f"{n} no-op steps per pipeline; seconds (ms per step)  python {sys.version.split()[0]}  cpus {os.cpu_count()}")
    print("  ".join(["measure".ljust(14), *[t.ljust(22) for t in names]]))
    for m in measures:
        cells = []
        for t in names:
            res = tools[t]
            cells.append("-".ljust(22) if res is None else f"{res[m]:.3f} s ({res[m] / n * 1000:.1f} ms)".ljust(22))
        print("  ".join([m.ljust(14), *cells]))
    ours = tools["conveyor in-process"] or {}
    print(f"\ngoal: < 5 ms per step  -> conveyor in-process chain first: {ours['chain first'] / n * 1000:.1f} ms")
    print(f"goal: cached 100-step re-run < 1 s -> chain cached: {ours['chain cached'] * 100 / n:.3f} s (scaled to 100)")
    for t in names:
        other = tools[t]
        if other is None or t.startswith("conveyor"):
            continue
        ratios = ", ".join(f"{m} {other[m] / ours[m]:.1f}x" for m in measures)
        print(f"conveyor in-process vs {t} (their time / ours): {ratios}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"steps": n, "results": tools}, indent=2) + "\n")


if __name__ == "__main__":
    main()
