"""Helpers shared by the benchmark scripts: the machine, MLflow set-up and the result table.

The scripts run as ``python benchmarks/<name>.py``, so this module is imported
as ``_common`` (the script's folder is first on ``sys.path``).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import Any

# What MLflow must not do while it is measured: log asynchronously, sample system
# metrics, or send telemetry. Set before the first ``import mlflow``, which reads some
# of them at import time. MLflow only honours DO_NOT_TRACK when it is "true".
MLFLOW_ENV = {
    "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
    "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_TRACKING_URI": "",  # set per measurement with mlflow.set_tracking_uri
}


def quiet_mlflow() -> Any:
    """Import MLflow with telemetry, async logging and system metrics off."""
    os.environ.update(MLFLOW_ENV)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    import mlflow

    # MLflow logs each schema migration at INFO when it creates a database.
    for name in ("alembic", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return mlflow


@contextmanager
def scratch(prefix: str, root: str | None = None) -> Iterator[Path]:
    """A fresh folder on local disk, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=f"conveyor-bench-{prefix}-", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=False
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "date": date.today().isoformat(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "conveyor": version("conveyor-mlops"),
        "mlflow": version("mlflow"),
        "sqlalchemy": version("sqlalchemy"),
        "load_average_1m": round(os.getloadavg()[0], 2),  # other work on the machine at the start
    }


def print_machine(info: dict[str, Any]) -> None:
    print(
        f"{info['date']}  {info['cpus']} CPUs ({info['cpu_model']})  Python {info['python']}  "
        f"SQLite {info['sqlite']}  conveyor {info['conveyor']}  mlflow {info['mlflow']}  "
        f"SQLAlchemy {info['sqlalchemy']}  load {info['load_average_1m']}"
    )


@dataclass
class Row:
    """One line of a result table.

    ``higher_is_better`` rows are rates; the others are durations. ``speedup`` is
    always "how many times faster Conveyor is": Conveyor/MLflow for rates,
    MLflow/Conveyor for durations.
    """

    measure: str
    unit: str
    conveyor: float | None
    mlflow: float | None
    higher_is_better: bool
    goal: str
    met: bool | None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def speedup(self) -> float | None:
        if not self.conveyor or not self.mlflow:
            return None
        if self.higher_is_better:
            return self.conveyor / self.mlflow
        return self.mlflow / self.conveyor


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "ms":
        return f"{value:,.1f} ms"
    if value >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:,.1f} {unit}"


def print_table(rows: list[Row]) -> None:
    header = ("measure", "Conveyor", "MLflow", "speed-up", "goal", "met")
    lines = [
        (
            r.measure,
            fmt(r.conveyor, r.unit),
            fmt(r.mlflow, r.unit),
            "-" if r.speedup is None else f"{r.speedup:,.1f}x",
            r.goal,
            "-" if r.met is None else ("yes" if r.met else "NO"),
        )
        for r in rows
    ]
    widths = [max(len(str(x[i])) for x in [header, *lines]) for i in range(len(header))]
    for i, line in enumerate([header, *lines]):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def dump_json(
    path: str, command: list[str], info: dict[str, Any], rows: list[Row], extra: dict[str, Any]
) -> None:
    payload = {
        "command": " ".join(command),
        "machine": info,
        "results": [{**asdict(r), "speedup": r.speedup} for r in rows],
        **extra,
    }
    Path(path).write_text(json.dumps(payload, indent=2) + "\n")
    print(f"results written to {path}")


class Clock:
    """``with Clock() as c: ...`` then ``c.seconds``."""

    def __enter__(self) -> Clock:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
