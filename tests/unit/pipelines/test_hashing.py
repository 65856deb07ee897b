"""Cache keys follow the code a step reaches, its parameters and its inputs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from conveyor.pipelines.hashing import cache_key, code_fingerprint

_TEMPLATE = '''
import json
from conveyor.pipelines import step

def helper(x):
    return x + {helper_body}

def unused():
    return {unused_body}

@step
def compute(x: int) -> int:
    return helper(x) + len(json.dumps(x))
'''


def _module(tmp_path: Path, name: str, helper_body: str = "1", unused_body: str = "0") -> ModuleType:
    path = tmp_path / f"{name}.py"
    path.write_text(_TEMPLATE.format(helper_body=helper_body, unused_body=unused_body))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_the_same_code_gives_the_same_fingerprint(tmp_path: Path) -> None:
    a = _module(tmp_path, "fp_same_a")
    b = _module(tmp_path, "fp_same_b")
    # where the code lives does not matter, only what it is
    assert code_fingerprint(a.compute.fn) == code_fingerprint(b.compute.fn)
    assert code_fingerprint(a.compute.fn) != code_fingerprint(a.helper)


def test_editing_a_called_project_function_changes_the_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    before = code_fingerprint(_module(tmp_path / "x", "fp_helper", helper_body="1").compute.fn)
    after = code_fingerprint(_module(tmp_path / "y", "fp_helper", helper_body="2").compute.fn)
    assert before != after


def test_editing_a_function_the_step_does_not_call_keeps_the_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    before = code_fingerprint(_module(tmp_path / "x", "fp_unused", unused_body="1").compute.fn)
    after = code_fingerprint(_module(tmp_path / "y", "fp_unused", unused_body="2").compute.fn)
    assert before == after


def test_every_part_of_the_key_matters() -> None:
    base = cache_key("code", {"lr": "0.1"}, {"df": "blake3:aa"}, {"path": "blake3:ff"}, 1)
    assert base == cache_key("code", {"lr": "0.1"}, {"df": "blake3:aa"}, {"path": "blake3:ff"}, 1)
    variants = [
        cache_key("code2", {"lr": "0.1"}, {"df": "blake3:aa"}, {"path": "blake3:ff"}, 1),
        cache_key("code", {"lr": "0.2"}, {"df": "blake3:aa"}, {"path": "blake3:ff"}, 1),
        cache_key("code", {"lr": "0.1"}, {"df": "blake3:ab"}, {"path": "blake3:ff"}, 1),
        cache_key("code", {"lr": "0.1"}, {"df": "blake3:aa"}, {"path": "blake3:fe"}, 1),
        cache_key("code", {"lr": "0.1"}, {"df": "blake3:aa"}, {"path": "blake3:ff"}, 2),
    ]
    assert len({base, *variants}) == 6
