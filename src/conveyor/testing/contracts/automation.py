"""The contract every automation store passes (``store.automation`` of each metadata store).

Subclass it, provide a ``store`` fixture returning an empty metadata store, and
say how to open a second store on the same database (what another agent
process would hold) and how to read the audit trail::

    class TestMyAutomation(AutomationStoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            return MyStore(f"my://{tmp_path}")

        def another(self, store):
            return MyStore(store.uri)      # closed with .close()

        def audit_actions(self, store):
            return [...]                   # event actions, oldest first

        def audit_chain_ok(self, store):
            return True                    # whether the hash chain verifies
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from conveyor.core.errors import InvalidArgument, InvalidState, LeaseLost, NotFound
from conveyor.core.ids import new_id, now_ms

T = TypeVar("T")
RACERS = 20
SPEC = {"pipeline": "train-bikes", "model": "bike-demand", "triggers": [{"schedule": "@daily"}],
        "alerts": ["slack=https://hooks.slack.com/services/SECRET"]}
PATH = ["running", "gating", "canary", "watching", "done"]


def fire(automation: Any, automation_id: str, key: str = "schedule:1", **extra: Any) -> Any:
    return automation.add_firing(automation_id, trigger="schedule", key=key, reason=f"it is time ({key})",
                                 evidence={"due": 1}, **extra)


class AutomationStoreContract:
    """Automations, firings recorded once and moved once, leases with one holder, under real concurrency."""

    def another(self, store: Any) -> Any:
        """A second store on the same database as ``store``, closed with ``close()``."""
        raise NotImplementedError("subclasses say how to open a second store on the same database")

    def audit_actions(self, store: Any) -> list[str]:
        """The actions of the store's audit events, oldest first."""
        raise NotImplementedError("subclasses say how to read the audit trail of their store")

    def audit_chain_ok(self, store: Any) -> bool:
        """Whether the audit trail's hash chain verifies."""
        raise NotImplementedError("subclasses say how to verify the audit chain of their store")

    def make(self, store: Any, name: str = "retrain", project: str = "bikes", **extra: Any) -> Any:
        return store.automation.put_automation(project=project, name=name, spec=SPEC, **extra)

    def race(self, store: Any, work: Callable[[Any, int], T]) -> list[T | Exception]:
        """Run ``work(store_i, i)`` at once in :data:`RACERS` threads, each with its own store."""
        barrier = threading.Barrier(RACERS)

        def run(args: tuple[Any, int]) -> T | Exception:
            barrier.wait()
            try:
                return work(*args)
            except Exception as exc:  # the caller counts refusals
                return exc

        with self.stores(store) as stores, ThreadPoolExecutor(RACERS) as pool:
            return list(pool.map(run, [(s, i) for i, s in enumerate(stores)]))

    @contextlib.contextmanager
    def stores(self, store: Any) -> Iterator[list[Any]]:
        opened: list[Any] = []
        try:
            for _ in range(RACERS):
                opened.append(self.another(store))
            yield opened
        finally:
            for s in opened:
                s.close()

    # ------------------------------------------------------------- automations

    def test_an_automation_is_created_replaced_listed_and_deleted(self, store: Any) -> None:
        auto = store.automation
        made = self.make(store, cursors={"schedule": 10})
        assert made.spec == SPEC and made.cursors == {"schedule": 10} and made.enabled
        assert auto.get_automation("bikes", "retrain") == made == auto.get_automation_by_id(made.id)
        spec = {**SPEC, "model": "bike-demand-v2"}
        replaced = auto.put_automation(project="bikes", name="retrain", spec=spec, cursors={"new_data": 3})
        assert replaced.id == made.id and replaced.created_at == made.created_at and replaced.spec == spec
        assert replaced.cursors == {"schedule": 10, "new_data": 3}  # kept, merged
        assert auto.get_automation("bikes", "retrain") == replaced
        other = self.make(store, name="another")
        elsewhere = self.make(store, name="retrain", project="alpha")
        assert [a.id for a in auto.list_automations("bikes")] == [other.id, made.id]
        assert [a.id for a in auto.list_automations()] == [elsewhere.id, other.id, made.id]
        off = auto.set_enabled("bikes", "retrain", False)
        assert not off.enabled and auto.get_automation("bikes", "retrain") == off
        auto.delete_automation("bikes", "retrain")
        with pytest.raises(NotFound):
            auto.get_automation("bikes", "retrain")
        assert [a.id for a in auto.list_automations()] == [elsewhere.id, other.id]

    def test_missing_automations_and_bad_input_are_refused_and_change_nothing(self, store: Any) -> None:
        auto = store.automation
        for call in (lambda: auto.get_automation("bikes", "nope"), lambda: auto.get_automation_by_id(new_id()),
                     lambda: auto.set_enabled("bikes", "nope", False), lambda: auto.delete_automation("bikes", "nope"),
                     lambda: fire(auto, new_id())):
            with pytest.raises(NotFound):
                call()
        with pytest.raises(InvalidArgument) as err:
            auto.put_automation(project="bikes", name="../x", spec=SPEC)
        assert err.value.field == "name"
        with pytest.raises(InvalidArgument) as err:
            auto.put_automation(project="bikes", name="retrain", spec={"when": object()})
        assert err.value.field == "spec"
        assert auto.list_automations() == []
        made = self.make(store)
        with pytest.raises(InvalidArgument) as err:
            auto.add_firing(made.id, trigger="sunspots", key="k", reason="", evidence={})
        assert err.value.field == "trigger" and auto.list_firings(made.id) == []

    # ----------------------------------------------------------------- firings

    def test_firings_are_numbered_and_each_key_fires_once_with_its_cursor(self, store: Any) -> None:
        auto = store.automation
        made = self.make(store, cursors={"schedule": 0})
        firings = [fire(auto, made.id, f"schedule:{i}", cursor=("schedule", i)) for i in (1, 2, 3)]
        assert [f.number for f in firings] == [1, 2, 3]
        first = firings[0]
        assert first.state == "pending" and first.evidence == {"due": 1} and first.finished_at is None
        assert [(s["state"], s["message"]) for s in first.steps] == [("pending", "it is time (schedule:1)")]
        assert auto.get_firing(first.id) == first
        assert auto.get_automation("bikes", "retrain").cursors == {"schedule": 3}
        again = fire(auto, made.id, "schedule:2", cursor=("schedule", 99))
        assert again is None  # fired on this before: nothing recorded, the cursor stays
        assert auto.get_automation("bikes", "retrain").cursors == {"schedule": 3}
        assert [f.number for f in auto.list_firings(made.id)] == [3, 2, 1]
        assert [f.number for f in auto.list_firings(made.id, limit=2)] == [3, 2]
        assert [f.id for f in auto.active_firings()] == [f.id for f in firings]

    def test_a_firing_moves_through_every_state_to_done(self, store: Any) -> None:
        auto = store.automation
        made = self.make(store)
        firing = fire(auto, made.id)
        run_id = new_id()
        extra: dict[str, dict[str, Any]] = {
            "running": {"run_id": run_id}, "gating": {"candidate": 4, "previous": 3},
            "canary": {"evidence": {"canary_share": 0.1}},
        }
        state = "pending"
        for step in PATH:
            fields = extra.get(step, {})
            firing = auto.advance_firing(firing.id, expect=state, state=step, message=f"now {step}",
                                         details={"step": step}, **fields)
            assert firing.state == step and auto.get_firing(firing.id) == firing
            if step == "watching":  # a progress note: a step, no move
                firing = auto.advance_firing(firing.id, expect="watching", state="watching", message="error 0.2")
            state = step
        assert [s["state"] for s in firing.steps] == ["pending", *PATH[:4], "watching", "done"]
        assert firing.steps[1] == {"at": firing.steps[1]["at"], "state": "running", "message": "now running",
                                   "details": {"step": "running"}}
        assert [s["at"] for s in firing.steps] == sorted(s["at"] for s in firing.steps)
        assert (firing.run_id, firing.candidate, firing.previous) == (run_id, 4, 3)
        assert firing.evidence == {"due": 1, "canary_share": 0.1}  # merged
        assert firing.finished_at == firing.steps[-1]["at"] and firing.error is None
        assert auto.active_firings() == []
        assert auto.list_firings(made.id, states=("done",)) == [firing]
        assert auto.list_firings(made.id, states=("failed", "pending")) == []

    def test_a_move_from_a_state_the_firing_left_or_out_of_a_final_state_is_refused(self, store: Any) -> None:
        auto = store.automation
        firing = fire(auto, self.make(store).id)
        with pytest.raises(InvalidState, match="pending, not running"):
            auto.advance_firing(firing.id, expect="running", state="gating", message="late", candidate=2)
        assert auto.get_firing(firing.id) == firing
        failed = auto.advance_firing(firing.id, expect="pending", state="failed", message="no data",
                                     error="the dataset is empty")
        assert failed.error == "the dataset is empty" and failed.finished_at is not None
        with pytest.raises(InvalidState, match="final"):
            auto.advance_firing(firing.id, expect="failed", state="running", message="retry")
        with pytest.raises(InvalidArgument):
            auto.advance_firing(firing.id, expect="failed", state="exploded", message="?")
        with pytest.raises(InvalidArgument):
            auto.advance_firing(firing.id, expect="failed", state="failed", message="?", colour="red")
        assert auto.get_firing(firing.id) == failed
        noted = auto.advance_firing(firing.id, expect="failed", state="failed", message="metrics",
                                    details={"rmse": float("nan"), "r2": [0.5, float("inf")]})
        assert noted.steps[-1]["details"] == {"rmse": None, "r2": [0.5, None]}  # JSON has no NaN
        assert auto.get_firing(firing.id) == noted and noted.finished_at == failed.finished_at
        with pytest.raises(NotFound):
            auto.advance_firing(new_id(), expect="pending", state="running", message="?")

    def test_an_automation_with_an_active_firing_cannot_be_deleted(self, store: Any) -> None:
        auto = store.automation
        made = self.make(store)
        firing = fire(auto, made.id)
        with pytest.raises(InvalidState, match="#1 still pending"):
            auto.delete_automation("bikes", "retrain")
        assert auto.get_firing(firing.id) == firing
        auto.advance_firing(firing.id, expect="pending", state="rejected", message="gate failed")
        auto.delete_automation("bikes", "retrain")
        assert auto.list_firings(made.id) == []
        with pytest.raises(NotFound):
            auto.get_firing(firing.id)
        remade = self.make(store)
        assert fire(auto, remade.id).number == 1

    # ------------------------------------------------------------------ leases

    def test_a_lease_has_one_holder_and_a_new_token_for_each_new_holder(self, store: Any) -> None:
        auto = store.automation
        t = now_ms()
        first = auto.acquire_lease("agent", "a", 1000, now=t)
        assert (first.holder, first.token, first.acquired_at, first.expires_at) == ("a", 1, t, t + 1000)
        renewed = auto.acquire_lease("agent", "a", 1000, now=t + 500)
        assert (renewed.token, renewed.acquired_at, renewed.expires_at) == (1, t, t + 1500)
        assert auto.acquire_lease("agent", "b", 1000, now=t + 1400) is None
        assert auto.get_lease("agent") == renewed
        taken = auto.acquire_lease("agent", "b", 1000, now=t + 1500)
        assert (taken.holder, taken.token, taken.acquired_at) == ("b", 2, t + 1500)
        assert auto.acquire_lease("agent", "a", 1000, now=t + 1600) is None
        auto.release_lease("agent", "a")  # not the holder: nothing happens
        assert auto.get_lease("agent") == taken
        auto.release_lease("agent", "b")
        assert auto.get_lease("agent").expires_at == 0 and auto.get_lease("agent").token == 2
        assert auto.acquire_lease("agent", "a", 1000, now=t + 1700).token == 3
        assert auto.get_lease("other") is None
        with pytest.raises(InvalidArgument):
            auto.acquire_lease("agent", "a", 0)
        actions = self.audit_actions(store)
        assert actions.count("agent_lease.acquire") == 3 and actions.count("agent_lease.release") == 1

    def test_a_stale_fence_writes_nothing(self, store: Any) -> None:
        auto = store.automation
        made = self.make(store, cursors={"schedule": 0})
        lease = auto.acquire_lease("agent", "a", 60_000)
        fence = ("agent", lease.token)
        firing = fire(auto, made.id, "schedule:1", cursor=("schedule", 1), fence=fence)
        firing = auto.advance_firing(firing.id, expect="pending", state="running", message="go", fence=fence)
        later = now_ms() + 120_000  # a's lease has expired by then; b takes over
        assert auto.acquire_lease("agent", "b", 600_000, now=later).token == 2
        with pytest.raises(LeaseLost):
            fire(auto, made.id, "schedule:2", cursor=("schedule", 2), fence=fence)
        with pytest.raises(LeaseLost):
            auto.advance_firing(firing.id, expect="running", state="failed", message="stalled", fence=fence)
        with pytest.raises(LeaseLost):
            fire(auto, made.id, "schedule:2", fence=("nobody-holds-this", 1))
        assert auto.get_firing(firing.id) == firing
        assert [f.id for f in auto.list_firings(made.id)] == [firing.id]
        assert auto.get_automation("bikes", "retrain").cursors == {"schedule": 1}
        assert fire(auto, made.id, "schedule:2", fence=("agent", 2)).number == 2

    # ------------------------------------------------------------------- races

    def test_racing_agents_get_a_lease_exactly_once(self, store: Any) -> None:
        winners = [r for r in self.race(store, lambda s, i: s.automation.acquire_lease("agent", f"h{i}", 60_000))
                   if r is not None]
        assert len(winners) == 1 and not isinstance(winners[0], Exception) and winners[0].token == 1
        assert store.automation.get_lease("agent") == winners[0]
        later = now_ms() + 120_000  # the winner stalled: everyone races to take over
        takers = [r for r in self.race(store, lambda s, i: s.automation.acquire_lease("agent", f"t{i}", 60_000,
                                                                                      now=later))
                  if r is not None]
        assert len(takers) == 1 and not isinstance(takers[0], Exception) and takers[0].token == 2
        assert self.audit_actions(store).count("agent_lease.acquire") == 2 and self.audit_chain_ok(store)

    def test_racing_triggers_record_a_key_once_and_number_firings_without_gaps(self, store: Any) -> None:
        made = self.make(store, cursors={"new_data": 0})
        same = self.race(store, lambda s, i: fire(s.automation, made.id, "new_data:bikes@3", cursor=("new_data", 3)))
        recorded = [f for f in same if f is not None]
        assert len(recorded) == 1 and not isinstance(recorded[0], Exception) and recorded[0].number == 1
        many = self.race(store, lambda s, i: fire(s.automation, made.id, f"manual:{i}"))
        assert sorted(f.number for f in many if not isinstance(f, Exception)) == list(range(2, RACERS + 2))
        assert len(store.automation.list_firings(made.id)) == RACERS + 1
        assert store.automation.get_automation("bikes", "retrain").cursors == {"new_data": 3}
        assert self.audit_actions(store).count("automation.fire") == RACERS + 1 and self.audit_chain_ok(store)

    def test_racing_agents_move_a_firing_exactly_once(self, store: Any) -> None:
        firing = fire(store.automation, self.make(store).id)
        results = self.race(store, lambda s, i: s.automation.advance_firing(
            firing.id, expect="pending", state="running", message=f"agent {i}"))
        moved = [r for r in results if not isinstance(r, Exception)]
        refused = [r for r in results if isinstance(r, InvalidState)]
        assert len(moved) == 1 and len(refused) == RACERS - 1
        final = store.automation.get_firing(firing.id)
        assert final == moved[0] and [s["state"] for s in final.steps] == ["pending", "running"]
        assert self.audit_actions(store).count("automation.firing.running") == 1 and self.audit_chain_ok(store)
