"""Cache keys: what a step's result depends on, hashed.

A key covers the step's source code and the source of the project functions
and classes it calls (followed transitively; installed libraries are left out,
their versions are on the run's environment), the values of its parameters,
the content hashes of its inputs and of the files it declares with ``files=``.
Change any of them and the key changes, so exactly that step and everything
downstream run again.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import sysconfig
import types
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import blake3

from conveyor.core.errors import InvalidArgument

KEY_VERSION = 1


@lru_cache(maxsize=1)
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, paths.get("stdlib", ""), paths.get("purelib", "")}
    return tuple(os.path.realpath(r) for r in roots if r)


def _is_project(obj: Any) -> bool:
    """Defined in the user's code: not the standard library, not installed, not Conveyor."""
    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    name = getattr(module, "__name__", "")
    if module is None or name == "conveyor" or name.startswith("conveyor."):
        return False
    file = getattr(module, "__file__", None)
    if not file:
        return name == "__main__"
    real = os.path.realpath(file)
    return not any(real.startswith(root + os.sep) for root in _library_roots())


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):  # defined in a REPL: fall back to the bytecode
        code = getattr(obj, "__code__", None)
        return repr(code.co_code) if code is not None else repr(obj)


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def code_fingerprint(fn: Any) -> str:
    """Hash of ``fn``'s source and of the project code it reaches."""
    hasher = blake3.blake3()
    seen: set[int] = set()
    stack: list[Any] = [fn]
    parts: list[tuple[str, str]] = []
    while stack:
        obj = stack.pop()
        obj = getattr(obj, "fn", obj) if type(obj).__name__ == "Step" else obj
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        # the module name is left out: the same code keeps its key when a file is loaded
        # by path (the CLI) or imported, and when the project folder moves
        parts.append((getattr(obj, "__qualname__", ""), _source(obj)))
        funcs = [obj] if inspect.isfunction(obj) else [
            m for m in vars(obj).values() if inspect.isfunction(m)
        ] if inspect.isclass(obj) else []
        for func in funcs:
            names = _names(func.__code__)
            scope = {**func.__globals__, **_closure(func)}
            for name in names:
                value = scope.get(name)
                if isinstance(value, types.ModuleType):
                    for attr in names:
                        member = getattr(value, attr, None)
                        if _callable_project(member):
                            stack.append(member)
                elif _callable_project(value):
                    stack.append(value)
    for qualname, source in sorted(parts):
        hasher.update(qualname.encode() + b"\0" + source.encode() + b"\0")
    return hasher.hexdigest()


def _closure(func: types.FunctionType) -> dict[str, Any]:
    if not func.__closure__:
        return {}
    values = {}
    for name, cell in zip(func.__code__.co_freevars, func.__closure__, strict=True):
        try:
            values[name] = cell.cell_contents
        except ValueError:  # an empty cell
            continue
    return values


def _callable_project(value: Any) -> bool:
    if type(value).__name__ == "Step":
        return True
    return (inspect.isfunction(value) or inspect.isclass(value)) and _is_project(value)


def file_digest(path: Any, where: str) -> str:
    """Content hash of the file at ``path``, or an error naming the parameter."""
    from conveyor.stores.artifacts.cas import hash_file

    if not isinstance(path, str | os.PathLike):
        raise InvalidArgument(f"{where} must be a file path, got {type(path).__name__}", field=where)
    file = Path(path)
    if not file.is_file():
        raise InvalidArgument(f"{where}: {str(file)!r} is not a file", field=where)
    return hash_file(file)[0]


def cache_key(
    fingerprint: str,
    params: Mapping[str, str],
    inputs: Mapping[str, str],
    files: Mapping[str, str],
    n_outputs: int,
) -> str:
    """The key of one step invocation; ``params`` are canonical JSON texts, the rest digests."""
    doc = {
        "v": KEY_VERSION,
        "code": fingerprint,
        "params": dict(params),
        "inputs": dict(inputs),
        "files": dict(files),
        "outputs": n_outputs,
    }
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return blake3.blake3(data).hexdigest()[:40]
