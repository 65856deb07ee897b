"""Dataset add, Conveyor against DVC, on the same folder; plus profile + validate speed.

Measures, each tool as its command-line user runs it (a fresh process per call):

- first ``add`` of a folder of ``--files`` files totalling ``--mib`` MiB;
- re-``add`` after 10 files were modified;
- no-op re-``add`` (and ``dvc status``);
- the physical references: reading every file once (page cache warm: the files
  were just written) and multi-threaded BLAKE3 over every file in this process.

Conveyor runs ``conveyor data add DIR --name bench`` with a fresh ``CONVEYOR_HOME``;
DVC runs ``dvc add DIR`` inside a fresh ``git init`` + ``dvc init`` repository
holding the folder. Then a ``--rows`` x 20 column table is profiled, a strict suite
derived from it, and the table validated against that suite (in process).

    .venv-bench/bin/python benchmarks/data_add.py            # 2,000 files, 1 GiB, 1M rows
    .venv-bench/bin/python benchmarks/data_add.py --quick    # 200 files, 32 MiB, 100k rows
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import Clock, dump_json, machine, scratch

MODIFIED = 10


def make_folder(root: Path, files: int, total: int, seed: int = 0) -> list[Path]:
    import numpy as np

    rng = np.random.default_rng(seed)
    size = max(1, total // files)
    paths = []
    for i in range(files):
        sub = root / f"shard-{i % 20:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"item-{i:06d}.bin"
        path.write_bytes(rng.bytes(size))
        paths.append(path)
    return paths


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    with Clock() as clock:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return clock.seconds


def read_all(paths: list[Path]) -> float:
    with Clock() as clock:
        for p in paths:
            with open(p, "rb") as handle:
                while handle.read(1 << 20):
                    pass
    return clock.seconds


def blake3_all(paths: list[Path]) -> float:
    from conveyor.stores.artifacts.cas import hash_file

    with Clock() as clock, ThreadPoolExecutor(min(32, (os.cpu_count() or 1) * 4)) as pool:
        list(pool.map(hash_file, paths))
    return clock.seconds


def modify(paths: list[Path]) -> None:
    for p in paths[:: max(1, len(paths) // MODIFIED)][:MODIFIED]:
        data = bytearray(p.read_bytes())
        data[0] ^= 0xFF
        p.write_bytes(bytes(data))


def bench_add(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    repo = work / "repo"
    folder = repo / "data"
    paths = make_folder(folder, args.files, args.mib << 20)
    results: dict[str, Any] = {"read_all_s": read_all(paths), "blake3_s": blake3_all(paths)}
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["CONVEYOR_HOME"] = str(work / "conveyor-home")
    # Both tools may cache their compiled bytecode, as an installed package does; the
    # untimed set-up calls below warm the caches of both.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    conveyor = [sys.executable, "-m", "conveyor.cli.main", "data", "add", str(folder), "--name", "bench"]
    dvc = shutil.which("dvc", path=str(Path(sys.executable).parent)) or shutil.which("dvc")
    # Set-up is not measured: DVC's repository, Conveyor's database schema.
    timed([sys.executable, "-m", "conveyor.cli.main", "data", "ls"], repo, env)
    if dvc and not args.no_dvc:
        for cmd in (["git", "init", "-q"], [dvc, "init", "-q"], [dvc, "status"]):
            timed(cmd, repo, env)
    steps = [("first add", None), (f"re-add, {MODIFIED} files modified", modify), ("no-op re-add", None)]
    for label, before in steps:
        if before is not None:
            before(paths)
        results[f"conveyor {label}"] = timed(conveyor, repo, env)
        if dvc and not args.no_dvc:
            results[f"dvc {label}"] = timed([dvc, "add", "-q", "data"], repo, env)
    if dvc and not args.no_dvc:
        results["dvc status"] = timed([dvc, "status"], repo, env)
    return results


def bench_validate(rows: int) -> dict[str, float]:
    import numpy as np
    import polars as pl

    import conveyor.data as data

    rng = np.random.default_rng(1)
    columns: dict[str, Any] = {}
    for i in range(14):
        columns[f"num{i}"] = rng.normal(i, 1 + i, rows)
    for i in range(4):
        columns[f"cat{i}"] = rng.choice([f"c{j}" for j in range(5 + i)], rows)
    columns["id"] = np.arange(rows)
    columns["flag"] = rng.random(rows) < 0.3
    df = pl.DataFrame(columns)
    with Clock() as profile:
        prof = data.profile_frame(df)
    suite = data.Suite.from_profile(prof, tolerance="strict")
    with Clock() as check:
        report = data.validate(df, suite, record=False)
    assert report.ok, report.to_text()
    return {"profile_s": profile.seconds, "validate_s": check.seconds, "checks": len(report.results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="200 files, 32 MiB, 100,000 rows")
    parser.add_argument("--no-dvc", action="store_true", help="skip DVC even if installed")
    parser.add_argument("--dir", default=None, help="where the temporary folders go")
    parser.add_argument("--json", default=None, help="write the results to this file")
    args = parser.parse_args()
    if args.quick:
        args.files, args.mib, args.rows = 200, 32, 100_000
    info = machine()
    print(f"{info['date']}  {info['cpus']} CPUs ({info['cpu_model']})  Python {info['python']}  load {info['load_average_1m']}")
    print(f"folder: {args.files} files, {args.mib} MiB; table: {args.rows:,} rows x 20 columns\n")
    with scratch("data-add", args.dir) as work:
        started = time.perf_counter()
        add = bench_add(args, work)
        print(f"{'measure':<34} {'Conveyor':>10} {'DVC':>10} {'speed-up':>9}")
        for label in ("first add", f"re-add, {MODIFIED} files modified", "no-op re-add"):
            ours, theirs = add.get(f"conveyor {label}"), add.get(f"dvc {label}")
            speedup = f"{theirs / ours:,.1f}x" if ours and theirs else "-"
            print(f"{label:<34} {ours:>9.2f}s {theirs if theirs is None else f'{theirs:.2f}s':>10} {speedup:>9}")
        if "dvc status" in add:
            print(f"{'dvc status':<34} {'':>10} {add['dvc status']:>9.2f}s")
        mib_s = args.mib / add["blake3_s"]
        print(f"\nreferences: read every file {add['read_all_s']:.2f}s; "
              f"multi-threaded BLAKE3 {add['blake3_s']:.2f}s ({mib_s:,.0f} MiB/s); "
              f"first add / BLAKE3 = {add['conveyor first add'] / add['blake3_s']:.2f}")
        table = bench_validate(args.rows)
        print(f"profile {args.rows:,} x 20: {table['profile_s']:.2f}s; "
              f"validate ({table['checks']} checks): {table['validate_s']:.2f}s "
              f"(goal: both < 2 s together)")
        print(f"\ntotal {time.perf_counter() - started:.0f}s")
    if args.json:
        dump_json(args.json, sys.argv, info, [], {"add": add, "table": table, "sizes": vars(args)})


if __name__ == "__main__":
    main()
