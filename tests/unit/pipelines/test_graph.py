"""Tracing a pipeline function into a checked, immutable DAG; composing and drawing it."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from conveyor.core.errors import InvalidArgument
from conveyor.pipelines import Pipeline, pipeline, step
from conveyor.pipelines.graph import Node, OutputRef
from conveyor.pipelines.launch import resolve_params


@step
def load(path: str) -> pd.DataFrame:
    return pd.read_csv(path)


@step
def split(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return df.iloc[:10], df.iloc[10:]


@step
def fit(train: pd.DataFrame, lr: float) -> dict:
    return {"lr": lr, "n": len(train)}


@step
def score(model: dict, valid: pd.DataFrame) -> float:
    return float(len(valid)) * model["lr"]


@step
def count(n: int) -> int:
    return n


@pipeline
def training(path: str, lr: float = 0.05):
    tr, va = split(load(path))
    return score(fit(tr, lr=lr), va)


def test_the_function_is_traced_into_nodes_in_dependency_order() -> None:
    assert isinstance(training, Pipeline)
    assert [n.name for n in training] == ["load", "split", "fit", "score"]
    assert dict(training.node("score").inputs)["valid"] == OutputRef("split", 1)
    assert training.outputs == (OutputRef("score", 0),)
    assert [(p.name, p.required) for p in training.params] == [("path", True), ("lr", False)]


def test_a_step_called_outside_a_pipeline_is_the_plain_function() -> None:
    assert fit(pd.DataFrame({"a": [1, 2]}), lr=0.1) == {"lr": 0.1, "n": 2}


def test_the_dag_is_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        training.name = "other"  # type: ignore[misc]


def test_a_step_called_twice_gets_numbered_names() -> None:
    @pipeline
    def twice(path: str):
        load(path)
        load(path)

    assert [n.name for n in twice] == ["load", "load_2"]


def test_a_missing_input_is_an_error_naming_the_step() -> None:
    with pytest.raises(InvalidArgument, match="step 'fit'.*missing a required argument: 'lr'"):

        @pipeline
        def broken(path: str):
            tr, va = split(load(path))
            fit(tr)


def test_an_output_of_the_wrong_type_is_an_error_before_anything_runs() -> None:
    with pytest.raises(InvalidArgument, match=r"count.n expects int but gets the output of 'load'") as info:

        @pipeline
        def mismatched(path: str):
            count(load(path))

    assert info.value.field == "count.n"


def test_a_parameter_of_the_wrong_type_is_an_error() -> None:
    with pytest.raises(InvalidArgument, match="count.n expects int"):

        @pipeline
        def mismatched(path: str):
            count(path)


def test_a_literal_argument_must_be_json() -> None:
    with pytest.raises(InvalidArgument, match="fit.lr expects float, got object"):

        @pipeline
        def bad(path: str):
            tr, va = split(load(path))
            fit(tr, lr=object())


def test_unpacking_a_single_output_is_an_error() -> None:
    with pytest.raises(InvalidArgument, match="has one output"):

        @pipeline
        def bad(path: str):
            a, b = load(path)


def test_branching_on_a_traced_value_is_an_error() -> None:
    with pytest.raises(InvalidArgument, match="branch inside a step"):

        @pipeline
        def bad(path: str):
            if load(path):
                pass


def test_a_parameter_named_like_a_run_option_is_an_error() -> None:
    with pytest.raises(InvalidArgument, match="parameter name 'executor' is reserved"):

        @pipeline
        def bad(executor: str):
            load(executor)


def test_a_cycle_is_an_error() -> None:
    a = Node("a", count, (("n", OutputRef("b")),))
    b = Node("b", count, (("n", OutputRef("a")),))
    with pytest.raises(InvalidArgument, match="cycle: (a -> b -> a|b -> a -> b)"):
        Pipeline("loop", (a, b))


def test_an_input_from_a_step_outside_the_pipeline_is_an_error() -> None:
    with pytest.raises(InvalidArgument, match="score.model needs the output of step 'fit'"):
        training.only("score")


def test_filters_return_new_checked_pipelines() -> None:
    up = training.upstream_of("fit")
    assert [n.name for n in up] == ["load", "split", "fit"]
    assert up.outputs == ()
    assert [n.name for n in training] == ["load", "split", "fit", "score"]  # unchanged


def test_downstream_of_a_middle_step_needs_its_inputs() -> None:
    with pytest.raises(InvalidArgument, match="needs the output of step"):
        training.downstream_of("fit")


def test_pipelines_combine_with_plus() -> None:
    @pipeline
    def counting(n: int = 3):
        count(n)

    both = training + counting
    assert [n.name for n in both] == ["load", "split", "fit", "score", "count"]
    assert {p.name for p in both.params} == {"path", "lr", "n"}
    assert (training.upstream_of("fit") + training).nodes == training.nodes  # shared steps merge


def test_combining_conflicting_steps_is_an_error() -> None:
    @pipeline
    def other(path: str):
        load("elsewhere.csv")

    with pytest.raises(InvalidArgument, match="both pipelines have a step 'load'"):
        training + other  # noqa: B018


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("text", "  score(model<-fit, valid<-split[1])"),
        ("mermaid", "    split -->|valid| score"),
        ("dot", '    "split" -> "score" [label="valid"];'),
    ],
)
def test_the_graph_renders(fmt: str, expected: str) -> None:
    assert expected in training.graph(fmt).splitlines()


def test_an_unknown_graph_format_is_an_error() -> None:
    with pytest.raises(InvalidArgument, match="unknown graph format 'svg'"):
        training.graph("svg")


def test_run_parameters_are_checked_before_anything_runs() -> None:
    assert resolve_params(training, {"path": "x.csv"}) == {"path": "x.csv", "lr": 0.05}
    with pytest.raises(InvalidArgument, match="needs parameter 'path'") as info:
        resolve_params(training, {})
    assert info.value.field == "path"
    with pytest.raises(InvalidArgument, match="has no parameter 'rate'"):
        resolve_params(training, {"path": "x", "rate": 1})
    with pytest.raises(InvalidArgument, match="lr expects float, got str"):
        resolve_params(training, {"path": "x", "lr": "fast"})
    with pytest.raises(InvalidArgument, match="lr must be JSON-serialisable"):
        resolve_params(training, {"path": "x", "lr": float("nan")})


def test_step_options_are_checked() -> None:
    with pytest.raises(InvalidArgument, match="retries must be a whole number"):
        step(retries=-1)
    with pytest.raises(InvalidArgument, match="timeout 'soon' is not a duration"):
        step(timeout="soon")
    with pytest.raises(InvalidArgument, match="unknown resource 'tpus'"):
        step(resources={"tpus": 1})
    with pytest.raises(InvalidArgument, match="files= names 'where'"):
        step(files=["where"])(load.fn)
    assert step(timeout="10m")(load.fn).options.timeout == 600.0
