"""Killing the leader: another agent takes over, and every firing happens exactly once.

Real processes: ``conveyor agent`` is started as a subprocess and killed with
SIGKILL in the middle of a pipeline; a second agent takes the lease when it
expires and finishes the firing. A death between moving the alias and recording
it is simulated in-process, where the instant can be chosen.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from automation_kit import agent, champion, spec, states

import conveyor as cv
from conveyor.automation.agent import Agent
from conveyor.automation.rollout import Step
from conveyor.tracking import fluent

pytestmark = pytest.mark.slow


def _start_agent(home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "CONVEYOR_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli.main", "agent", "--lease-ttl", "1", "--interval", "0.1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_leader_killed_mid_pipeline_is_replaced_and_the_firing_finishes_once(world: dict[str, Any]) -> None:
    cv.automation.apply(spec(world, params={"pause": 3.0}))
    cv.automation.trigger("retrain", reason="failover drill")
    first = _start_agent(world["home"])
    try:
        _wait(lambda: any(s.get("details", {}).get("started") for s in cv.automation.history("retrain")[0].steps),
              60, "the first agent to start the pipeline")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    killed_token = fluent.client().store.automation.get_lease("agent:default").token
    assert cv.automation.history("retrain")[0].state == "running"  # left mid-way by the dead leader

    second = _start_agent(world["home"])
    try:
        firing = _wait(lambda: (f := cv.automation.history("retrain")[0]).state == "done" and f, 90,
                       "the second agent to finish the firing")
    finally:
        second.send_signal(signal.SIGTERM)
        out, _ = second.communicate(timeout=30)
    assert len(cv.automation.history("retrain")) == 1  # fired once
    assert firing.candidate == 1 and champion() == 1  # one version registered, one champion
    assert any(s["message"].startswith("resumed") for s in firing.steps), states(firing)
    assert fluent.client().store.automation.get_lease("agent:default").token == killed_token + 1
    assert second.returncode == 0, out


def test_an_agent_dying_after_moving_the_alias_leaves_one_champion(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The alias moved, the firing was not recorded: the next leader records it, and moves nothing twice."""
    cv.automation.apply(spec(world))
    cv.automation.trigger("retrain")
    real_move = Step.move

    def dies_on_done(self: Step, state: str, *args: Any, **kwargs: Any) -> Any:
        if state == "done":
            raise KeyboardInterrupt("the agent process died here")
        return real_move(self, state, *args, **kwargs)

    monkeypatch.setattr(Step, "move", dies_on_done)
    with pytest.raises(KeyboardInterrupt):
        agent(holder="dying", lease_ttl=1.0).run_once()  # long enough for its keeper on a busy machine
    assert champion() == 1 and cv.automation.history("retrain")[0].state == "gating"
    monkeypatch.setattr(Step, "move", real_move)
    time.sleep(1.1)  # the dead agent's lease runs out

    Agent(fluent.client().store, fluent.client().content, world["home"], holder="next", lease_ttl=5).run_once()

    firing = cv.automation.history("retrain")[0]
    assert firing.state == "done" and champion() == 1
    moves = [m for m in cv.models.alias_history("toy", "champion") if m.version is not None]
    assert len(moves) == 1  # promoted once, not twice
    assert cv.models.get_model("toy").aliases == {"champion": 1}


def test_the_server_runs_the_agent_in_process(world: dict[str, Any]) -> None:
    from conveyor.serving.background import free_port

    cv.automation.apply(spec(world))
    cv.automation.trigger("retrain", reason="via the server's agent")
    env = {**os.environ, "CONVEYOR_HOME": str(world["home"])}
    server = subprocess.Popen(
        [sys.executable, "-m", "conveyor.cli.main", "server", "--agent", "--port", str(free_port())],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        firing = _wait(lambda: (f := cv.automation.history("retrain")[0]).state == "done" and f, 90,
                       "the server's agent to run the firing")
    finally:
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=30)
    assert firing.candidate == 1 and champion() == 1
    assert "automation agent running in this process" in out
