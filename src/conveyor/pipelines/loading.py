"""Finding a pipeline in a Python file (``FILE.py:NAME``) or where a run says it lives."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from conveyor.core.errors import InvalidArgument, NotFound
from conveyor.pipelines.graph import Pipeline


def module_name_for(path: Path) -> str:
    """A stable module name for a file, so worker processes can load the same file again."""
    digest = hashlib.blake2b(str(path).encode(), digest_size=4).hexdigest()
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"conveyor_file_{stem}_{digest}"


def load_file(path: str | Path) -> Any:
    """Import a Python file as a module (once per process)."""
    file = Path(path).resolve()
    if not file.is_file():
        raise InvalidArgument(f"pipeline file {str(path)!r} does not exist", field="file")
    if file.suffix != ".py":
        raise InvalidArgument(f"pipeline file {str(path)!r} is not a .py file", field="file")
    name = module_name_for(file)
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise InvalidArgument(f"cannot import {str(path)!r}", field="file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except InvalidArgument:
        del sys.modules[name]
        raise
    except Exception as exc:
        del sys.modules[name]
        raise InvalidArgument(
            f"importing {str(path)!r} failed: {type(exc).__name__}: {exc}", field="file"
        ) from exc
    return module


def load_pipeline(target: str) -> Pipeline:
    """The pipeline ``FILE.py:NAME`` (or ``package.module:NAME``) names."""
    where, sep, name = target.rpartition(":")
    if not sep or not where or not name:
        raise InvalidArgument(
            f"{target!r} does not name a pipeline; write FILE.py:NAME, e.g. examples/bikes/pipeline.py:training",
            field="pipeline",
        )
    if where.endswith(".py") or "/" in where:
        module = load_file(where)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise InvalidArgument(f"cannot import module {where!r}: {exc}", field="pipeline") from None
    value = getattr(module, name, None)
    if not isinstance(value, Pipeline):
        found = sorted(k for k, v in vars(module).items() if isinstance(v, Pipeline))
        hint = f"; it has {', '.join(found)}" if found else "; it defines no @pipeline"
        raise NotFound(f"{where} has no pipeline {name!r}{hint}", field="pipeline")
    return value


def load_from_source(module: str, qualname: str, file: str | None) -> Pipeline:
    """Load the pipeline a run recorded (module and name, or its file)."""
    mod = sys.modules.get(module)
    if mod is None:
        if file and Path(file).is_file() and module.startswith("conveyor_file_"):
            mod = load_file(file)
        else:
            try:
                mod = importlib.import_module(module)
            except ImportError:
                if not file:
                    raise NotFound(f"cannot import {module!r} to find the pipeline") from None
                mod = load_file(file)
    value: Any = mod
    for part in qualname.split("."):
        value = getattr(value, part, None)
    if not isinstance(value, Pipeline):
        raise NotFound(f"{module}.{qualname} is no longer a pipeline")
    return value
