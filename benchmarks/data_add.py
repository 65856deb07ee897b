"""Dataset add, Conveyor against DVC, on the same folder; plus profile + validate speed.

Measures, each tool as its command-line user runs it (a fresh process per call):

- first ``add`` of a folder of ``--files`` files totalling ``--mib`` MiB;
- re-``add`` after 10 files were modified;
- no-op re-``add`` (and ``dvc status``);
- the physical references: reading every file once (page cache warm: the files
  were just written), multi-threaded BLAKE3 over every file in this process,
  Conveyor's own hashing pass (``hash_files`` without a stat cache), and a durable
  copy of every file (copy + fsync on 8 threads: the floor of an add that copies);
- the start-up floor of a command: a bare interpreter, ``import sqlalchemy``, and
  ``conveyor --version`` (best of 3 each);
- every re-add and no-op runs ``--repeat`` rounds (default 3, other files modified
  each round) and the median is reported, tools interleaved round by round;
- the same re-adds in process (``cv.data.add`` against DVC's ``Repo.add``), where
  interpreter start-up and imports are paid once, not per command;
- link mode, each tool in its own copy of the folder: ``conveyor data add --link``
  against ``dvc add`` with ``cache.type hardlink``; both make the files read-only
  links into their cache, so the 10 modified files are replaced, not edited in place.

Conveyor runs ``conveyor data add DIR --name bench`` with a fresh ``CONVEYOR_HOME``;
DVC runs ``dvc add DIR`` inside a fresh ``git init`` + ``dvc init`` repository
holding the folder. ``--baseline SRC`` also runs the Conveyor commands from another
source tree (e.g. ``/work/main/src``) with its own home, for before/after in one run.
Every command starts after an ``os.sync()`` (not timed), so nobody pays for the
write-back of what ran before; Conveyor fsyncs what it stores, DVC does not.
Then a ``--rows`` x 20 column table is profiled, a strict suite derived from it, and
the table validated against that suite (in process).

    .venv-bench/bin/python benchmarks/data_add.py            # 2,000 files, 1 GiB, 1M rows
    .venv-bench/bin/python benchmarks/data_add.py --quick    # 200 files, 32 MiB, 100k rows
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
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


def hash_pass(folder: Path) -> float:
    """Conveyor's own hashing pass over the folder (walk + thread pool), no stat cache."""
    from conveyor.data.files import hash_files

    with Clock() as clock:
        hash_files(folder, None)
    return clock.seconds


def durable_copy(paths: list[Path], dest: Path) -> float:
    """The floor of a first add that copies: every file copied and fsynced, 8 threads."""
    dest.mkdir(parents=True)

    def copy(item: tuple[int, Path]) -> None:
        target = dest / f"{item[0]:06d}"
        shutil.copyfile(item[1], target)  # sendfile on Linux
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    os.sync()
    with Clock() as clock, ThreadPoolExecutor(8) as pool:
        list(pool.map(copy, enumerate(paths)))
    shutil.rmtree(dest)
    return clock.seconds


def modify(paths: list[Path], shift: int = 0, *, replace: bool = False) -> None:
    """Change the first byte of ``MODIFIED`` files (``shift`` picks other files).

    ``replace`` writes a new file and renames it over the old one, as a user of a
    link cache must (the cached file is the workspace file); otherwise in place.
    """
    for p in paths[shift :: max(1, len(paths) // MODIFIED)][:MODIFIED]:
        data = bytearray(p.read_bytes())
        data[0] ^= 0xFF
        if replace:
            tmp = p.with_name(p.name + ".tmp")
            tmp.write_bytes(bytes(data))
            os.replace(tmp, p)
        else:
            p.write_bytes(bytes(data))


def best_of(cmd: list[str], cwd: Path, env: dict[str, str], runs: int = 3) -> float:
    return min(timed(cmd, cwd, env) for _ in range(runs))


def startup(env: dict[str, str], cwd: Path) -> dict[str, float]:
    """Where a command's fixed cost goes: the interpreter, SQLAlchemy, our CLI."""
    py = sys.executable
    return {
        "python -c pass": best_of([py, "-c", "pass"], cwd, env),
        "python -c 'import sqlalchemy'": best_of([py, "-c", "import sqlalchemy"], cwd, env),
        "conveyor --version": best_of([py, "-m", "conveyor.cli.main", "--version"], cwd, env),
    }


def in_process(home: Path, repo: Path, paths: list[Path], dvc: bool, repeat: int) -> dict[str, float]:
    """The no-op and 10-file re-adds as Python calls, each tool warmed up first (medians)."""
    os.environ["CONVEYOR_HOME"] = str(home)
    import conveyor as cv

    cv.configure()
    folder = repo / "data"
    results: dict[str, float] = {}
    cv.data.add(folder, name="bench")  # imports, connection, schema check: not measured
    repo_api = None
    if dvc:
        import logging

        from dvc.repo import Repo

        logging.getLogger("dvc").setLevel(logging.WARNING)  # its "git add data.dvc" hints
        cwd = os.getcwd()
        os.chdir(repo)
        repo_api = Repo(str(repo))
        with contextlib.redirect_stdout(io.StringIO()):  # its "git add data.dvc" hints
            repo_api.add("data")
    for label, change in (("no-op re-add", False), (f"re-add, {MODIFIED} files modified", True)):
        runs: dict[str, list[float]] = {"conveyor": [], "dvc": []}
        for r in range(repeat):
            if change:
                modify(paths, repeat + r)  # not the files the command-line rounds changed
            os.sync()
            with Clock() as clock:
                cv.data.add(folder, name="bench")
            runs["conveyor"].append(clock.seconds)
            if repo_api is not None:
                os.sync()
                with Clock() as clock, contextlib.redirect_stdout(io.StringIO()):
                    repo_api.add("data")
                runs["dvc"].append(clock.seconds)
        for tool, times in runs.items():
            if times:
                results[f"{tool} {label}"] = statistics.median(times)
    if repo_api is not None:
        repo_api.close()
        os.chdir(cwd)
    return results


def bench_link(args: argparse.Namespace, work: Path, env: dict[str, str], dvc: str | None) -> dict[str, float]:
    """Link caches: ``conveyor data add --link`` against DVC's ``cache.type hardlink``."""
    ours, theirs = work / "link-conveyor", work / "link-dvc"
    paths = {"conveyor": make_folder(ours / "data", args.files, args.mib << 20)}
    link_env = dict(env, CONVEYOR_HOME=str(work / "link-home"))
    cmds = {"conveyor": ([sys.executable, "-m", "conveyor.cli.main", "data", "add", "data",
                          "--name", "bench", "--link"], ours, link_env)}
    if dvc:
        paths["dvc"] = make_folder(theirs / "data", args.files, args.mib << 20)
        for cmd in (["git", "init", "-q"], [dvc, "init", "-q"],
                    [dvc, "config", "cache.type", "hardlink"], [dvc, "status"]):
            timed(cmd, theirs, env)
        cmds["dvc"] = ([dvc, "add", "-q", "data"], theirs, env)
    timed([sys.executable, "-m", "conveyor.cli.main", "data", "ls"], ours, link_env)
    results: dict[str, float] = {}
    for label, change in (("first add", False), (f"re-add, {MODIFIED} files replaced", True),
                          ("no-op re-add", False)):
        runs: dict[str, list[float]] = {tool: [] for tool in cmds}
        for r in range(1 if label == "first add" else args.repeat):
            for tool, (cmd, cwd, tool_env) in cmds.items():
                if change:
                    modify(paths[tool], r, replace=True)
                os.sync()
                runs[tool].append(timed(cmd, cwd, tool_env))
        for tool, times in runs.items():
            results[f"{tool} {label}"] = statistics.median(times)
    return results


def bench_add(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    repo = work / "repo"
    folder = repo / "data"
    paths = make_folder(folder, args.files, args.mib << 20)
    os.sync()  # the folder is on disk before anyone adds it, as a user's data is
    results: dict[str, Any] = {"read_all_s": read_all(paths), "blake3_s": blake3_all(paths),
                               "hash_pass_s": hash_pass(folder),
                               "durable_copy_s": durable_copy(paths, work / "copy-floor")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["CONVEYOR_HOME"] = str(work / "conveyor-home")
    # Both tools may cache their compiled bytecode, as an installed package does; the
    # untimed set-up calls below warm the caches of both.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    add = ["-m", "conveyor.cli.main", "data", "add", str(folder), "--name", "bench"]
    found = shutil.which("dvc", path=str(Path(sys.executable).parent)) or shutil.which("dvc")
    dvc = None if args.no_dvc else found
    tools = {"conveyor": ([sys.executable, *add], env)}
    if args.baseline:
        base_env = dict(env, CONVEYOR_HOME=str(work / "baseline-home"), PYTHONPATH=args.baseline)
        tools["baseline"] = ([sys.executable, *add], base_env)
    if dvc:
        tools["dvc"] = ([dvc, "add", "-q", "data"], env)
    # Set-up is not measured: DVC's repository, Conveyor's database schema.
    for tool_env in [e for t, (_, e) in tools.items() if t != "dvc"]:
        timed([sys.executable, "-m", "conveyor.cli.main", "data", "ls"], repo, tool_env)
    if dvc:
        for cmd in (["git", "init", "-q"], [dvc, "init", "-q"], [dvc, "status"]):
            timed(cmd, repo, env)
    steps = [("first add", False), (f"re-add, {MODIFIED} files modified", True), ("no-op re-add", False)]
    for label, change in steps:
        runs: dict[str, list[float]] = {tool: [] for tool in tools}
        for r in range(1 if label == "first add" else args.repeat):
            if change:
                modify(paths, r)  # other files each round
            for tool, (cmd, tool_env) in tools.items():
                os.sync()
                runs[tool].append(timed(cmd, repo, tool_env))
        for tool, times in runs.items():
            results[f"{tool} {label}"] = statistics.median(times)
    if dvc:
        results["dvc status"] = timed([dvc, "status"], repo, env)
    results["startup"] = startup(env, repo)
    if not args.no_in_process:
        results["in_process"] = in_process(work / "conveyor-home", repo, paths, dvc is not None, args.repeat)
    if not args.no_link:
        results["link"] = bench_link(args, work, env, dvc)
    return results


def print_rows(results: dict[str, Any], labels: list[str], baseline: bool) -> None:
    print(f"{'measure':<34} {'Conveyor':>10} {'DVC':>10} {'speed-up':>9}"
          + (f" {'before':>10} {'before/after':>12}" if baseline else ""))
    for label in labels:
        ours, theirs = results.get(f"conveyor {label}"), results.get(f"dvc {label}")
        speedup = f"{theirs / ours:,.1f}x" if ours and theirs else "-"
        line = f"{label:<34} {ours:>9.3f}s {'-' if theirs is None else f'{theirs:.3f}s':>10} {speedup:>9}"
        before = results.get(f"baseline {label}")
        if baseline and before is not None and ours:
            line += f" {before:>9.3f}s {before / ours:>11.2f}x"
        print(line)


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
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of each re-add and no-op (medians reported; a first add runs once)")
    parser.add_argument("--no-link", action="store_true", help="skip the link-mode comparison")
    parser.add_argument("--no-in-process", action="store_true", help="skip the in-process comparison")
    parser.add_argument("--baseline", default=None, metavar="SRC",
                        help="also time the Conveyor commands from this source tree (before/after)")
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
        steps = ["first add", f"re-add, {MODIFIED} files modified", "no-op re-add"]
        print("command line (a fresh process per call):")
        print_rows(add, steps, bool(args.baseline))
        if "dvc status" in add:
            print(f"{'dvc status':<34} {'':>10} {add['dvc status']:>9.3f}s")
        print("start-up floor (best of 3): "
              + "; ".join(f"{k} {v:.3f}s" for k, v in add["startup"].items()))
        if "in_process" in add:
            print("\nin process (cv.data.add vs dvc.repo.Repo.add; imports paid once, not timed):")
            print_rows(add["in_process"], steps[1:][::-1], False)
        if "link" in add:
            print("\nlink mode (conveyor data add --link vs dvc cache.type hardlink; own folders):")
            print_rows(add["link"], ["first add", f"re-add, {MODIFIED} files replaced", "no-op re-add"], False)
        mib_s = args.mib / add["blake3_s"]
        print(f"\nreferences: read every file {add['read_all_s']:.2f}s; "
              f"multi-threaded BLAKE3 {add['blake3_s']:.2f}s ({mib_s:,.0f} MiB/s); "
              f"first add / BLAKE3 = {add['conveyor first add'] / add['blake3_s']:.2f}"
              + (f", with --link {add['link']['conveyor first add'] / add['blake3_s']:.2f}" if "link" in add else ""))
        print(f"            Conveyor's hashing pass (walk + threads, no cache) {add['hash_pass_s']:.2f}s "
              f"= {add['hash_pass_s'] / add['blake3_s']:.2f}x BLAKE3; copying every file with an "
              f"fsync (8 threads) {add['durable_copy_s']:.2f}s, the floor of an add that copies")
        table = bench_validate(args.rows)
        print(f"profile {args.rows:,} x 20: {table['profile_s']:.2f}s; "
              f"validate ({table['checks']} checks): {table['validate_s']:.2f}s "
              f"(goal: both < 2 s together)")
        print(f"\ntotal {time.perf_counter() - started:.0f}s")
    if args.json:
        dump_json(args.json, sys.argv, info, [], {"add": add, "table": table, "sizes": vars(args)})


if __name__ == "__main__":
    main()
