"""Data drift, Conveyor against Evidently's data drift preset, side by side in one run.

The same reference and current tables (15 numeric and 5 categorical columns, 5 of
them shifted in the current one) are written once to Parquet; each tool then runs
in a fresh interpreter that reads them, so import time, report time and peak memory
are each tool's own. Peak memory is the growth of the process's peak RSS during the
report (after the data is loaded). The script also compares the two tools' verdicts
column by column and times Conveyor alone on 1,000 columns.

    .venv-bench/bin/python benchmarks/drift.py            # 100k and 1M rows, ~3 min
    .venv-bench/bin/python benchmarks/drift.py --quick    # 100k rows only
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import machine, scratch

SHIFTED = ["n0", "n1", "n2", "c0", "c1"]


def make_tables(rows: int, folder: Path, numeric: int = 15, categorical: int = 5, seed: int = 0) -> tuple[Path, Path]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    cats = np.array(list("abcdefgh"))

    def table(shift: bool) -> pd.DataFrame:
        cols: dict[str, Any] = {}
        for i in range(numeric):
            moved = shift and f"n{i}" in SHIFTED
            cols[f"n{i}"] = rng.normal(0.5 if moved else 0.0, 1.0, rows)
        for i in range(categorical):
            p = np.full(len(cats), 1 / len(cats))
            if shift and f"c{i}" in SHIFTED:
                p = np.array([0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05])
            cols[f"c{i}"] = rng.choice(cats, rows, p=p)
        return pd.DataFrame(cols)

    ref, cur = folder / f"ref-{rows}.parquet", folder / f"cur-{rows}.parquet"
    table(False).to_parquet(ref)
    table(True).to_parquet(cur)
    return ref, cur


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(tool: str, ref_path: str, cur_path: str) -> dict[str, Any]:
    """Runs in a fresh interpreter: import, load, report; prints JSON."""
    start = time.perf_counter()
    if tool == "conveyor":
        import conveyor.monitoring.data_drift as mon  # what drift() needs, loaded up front
    else:
        from evidently import Report
        from evidently.presets import DataDriftPreset
    import_s = time.perf_counter() - start
    import pandas as pd

    ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
    before = _peak_mib()
    start = time.perf_counter()
    if tool == "conveyor":
        rep = mon.drift(ref, cur)
        verdicts = {n: c.drifted for n, c in rep.columns.items()}
    else:
        snap = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
        verdicts = {}
        for m in snap.dict()["metrics"]:
            cfg = m["config"]
            if cfg.get("type", "").endswith("ValueDrift"):
                is_p = "p_value" in cfg["method"] or "test" in cfg["method"].lower()
                value = m["value"]
                verdicts[cfg["column"]] = bool(value < cfg["threshold"] if is_p else value >= cfg["threshold"])
    seconds = time.perf_counter() - start
    return {"import_s": import_s, "seconds": seconds, "peak_mib": _peak_mib() - before, "verdicts": verdicts}


def run_worker(tool: str, ref: Path, cur: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", tool, str(ref), str(cur)],
        capture_output=True, text=True, check=False,
    )
    if out.returncode:
        raise SystemExit(f"the {tool} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def wide(rows: int, columns: int) -> float:
    import numpy as np
    import pandas as pd

    import conveyor.monitoring as mon

    rng = np.random.default_rng(1)
    ref = pd.DataFrame(rng.normal(size=(rows, columns)), columns=[f"x{i}" for i in range(columns)])
    cur = pd.DataFrame(rng.normal(0.05, 1, size=(rows, columns)), columns=ref.columns)
    start = time.perf_counter()
    mon.drift(ref, cur)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows only, and a smaller wide table")
    parser.add_argument("--worker", nargs=3, metavar=("TOOL", "REF", "CUR"), help=argparse.SUPPRESS)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    info = machine()
    sizes = [100_000] if args.quick else [100_000, 1_000_000]
    results: dict[str, Any] = {"machine": info, "command": " ".join(sys.argv), "sizes": {}}
    print(f"{info['date']}  {info['cpus']} CPUs ({info['cpu_model']})  Python {info['python']}  "
          f"load {info['load_average_1m']}")
    header = f"{'measure':<44}{'Conveyor':>12}{'Evidently':>12}{'speed-up':>10}"
    lines = [header, "-" * len(header)]
    with scratch("drift") as folder:
        for rows in sizes:
            ref, cur = make_tables(rows, folder)
            cv, ev = run_worker("conveyor", ref, cur), run_worker("evidently", ref, cur)
            same = [c for c in cv["verdicts"] if cv["verdicts"][c] == ev["verdicts"].get(c)]
            results["sizes"][rows] = {"conveyor": cv, "evidently": ev}
            lines.append(f"{f'drift report, {rows:,} rows x 20 cols (s)':<44}{cv['seconds']:>12.3f}"
                         f"{ev['seconds']:>12.3f}{ev['seconds'] / cv['seconds']:>9.1f}x")
            lines.append(f"{'  peak memory growth (MiB)':<44}{cv['peak_mib']:>12.0f}{ev['peak_mib']:>12.0f}"
                         f"{ev['peak_mib'] / max(cv['peak_mib'], 1):>9.1f}x")
            lines.append(f"{'  same verdict per column':<44}{len(same):>9}/{len(cv['verdicts'])}"
                         f"   drifted: {sorted(c for c, d in cv['verdicts'].items() if d)}")
            if rows == sizes[0]:
                lines.append(f"{'import (s)':<44}{cv['import_s']:>12.3f}{ev['import_s']:>12.3f}"
                             f"{ev['import_s'] / cv['import_s']:>9.1f}x")
    wide_rows = 10_000 if args.quick else 100_000
    seconds = wide(wide_rows, 1_000)
    results["wide"] = {"rows": wide_rows, "columns": 1_000, "seconds": seconds}
    lines.append(f"{f'Conveyor alone, {wide_rows:,} rows x 1,000 cols (s)':<44}{seconds:>12.3f}")
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
