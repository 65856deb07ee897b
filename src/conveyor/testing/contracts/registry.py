"""The contract every registry store passes (SQLite, PostgreSQL, and later the REST store).

Subclass it, provide a ``store`` fixture returning an empty metadata store whose
``registry`` attribute is the registry store, and say how to read its audit trail::

    class TestMyStore(RegistryStoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            return MyStore(f"my://{tmp_path}")

        def audit_events(self, store):
            return [...]          # AuditEvent records, oldest first
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from conveyor.core.context import acting_as
from conveyor.core.errors import AlreadyExists, InvalidArgument, InvalidState, NotFound

DIGEST = "blake3:" + "ab" * 32


def register(store: Any, name: str = "bike-demand", project: str = "bikes") -> int:
    mv = store.registry.create_version(
        project, name, flavour="sklearn", format="pickle", package_digest=DIGEST,
        signature=None, info={"python": "3.11"},
    )
    return mv.version


class RegistryStoreContract:
    """Registered models, gap-free versions, aliases, deletion rules, rollback, gate records, audit."""

    def audit_events(self, store: Any) -> list[Any]:
        """The store's audit events, oldest first (each has ``action``, ``actor``, ``details``)."""
        raise NotImplementedError("subclasses say how to read the audit trail of their store")

    def audit_chain_ok(self, store: Any) -> bool:
        """Whether the audit trail's hash chain verifies."""
        raise NotImplementedError("subclasses say how to verify the audit chain of their store")

    def audit_actions(self, store: Any) -> list[str]:
        return [e.action for e in self.audit_events(store)]

    def test_fifty_parallel_registrations_get_exactly_one_to_fifty(self, store: Any) -> None:
        with ThreadPoolExecutor(50) as pool:
            numbers = list(pool.map(lambda _: register(store), range(50)))
        assert sorted(numbers) == list(range(1, 51))
        page = store.registry.list_versions("bikes", "bike-demand", max_results=100)
        assert [mv.version for mv in page] == list(range(50, 0, -1))
        assert self.audit_chain_ok(store)
        assert self.audit_actions(store).count("model_version.create") == 50
        assert self.audit_actions(store).count("model.create") == 1

    def test_versions_resolve_by_number_alias_and_latest(self, store: Any) -> None:
        for _ in range(3):
            register(store)
        reg = store.registry
        assert reg.set_alias("bikes", "bike-demand", "champion", 2) is None
        assert reg.get_version("bikes", "bike-demand", "champion").version == 2
        assert reg.get_version("bikes", "bike-demand", "latest").version == 3
        assert reg.get_version("bikes", "bike-demand", "1").version == 1
        assert reg.get_version("bikes", "bike-demand", 2).aliases == ("champion",)
        model = reg.get_model("bikes", "bike-demand")
        assert model.aliases == {"champion": 2} and model.latest_version == 3
        with pytest.raises(NotFound, match="no alias 'shadow'"):
            reg.get_version("bikes", "bike-demand", "shadow")
        with pytest.raises(NotFound, match="no version 9"):
            reg.get_version("bikes", "bike-demand", 9)
        with pytest.raises(NotFound, match="'nope' does not exist"):
            reg.get_version("bikes", "nope", 1)

    def test_aliased_versions_cannot_be_deleted_or_archived_and_nothing_changes(self, store: Any) -> None:
        register(store)
        register(store)
        reg = store.registry
        reg.set_alias("bikes", "bike-demand", "champion", 1)
        before = self.audit_actions(store)
        with pytest.raises(InvalidState, match="holds alias"):
            reg.delete_version("bikes", "bike-demand", 1)
        with pytest.raises(InvalidState, match="holds alias"):
            reg.set_status("bikes", "bike-demand", 1, "archived")
        assert self.audit_actions(store) == before
        assert reg.get_version("bikes", "bike-demand", 1).status == "ready"
        reg.set_status("bikes", "bike-demand", 2, "archived")
        with pytest.raises(InvalidState, match="archived"):
            reg.set_alias("bikes", "bike-demand", "champion", 2)
        assert reg.get_model("bikes", "bike-demand").aliases == {"champion": 1}
        reg.delete_version("bikes", "bike-demand", 2)
        with pytest.raises(NotFound):
            reg.get_version("bikes", "bike-demand", 2)
        assert register(store) == 3  # numbers are never reused
        assert self.audit_actions(store)[-3:] == ["model_version.archive", "model_version.delete", "model_version.create"]

    def test_rollback_walks_back_through_the_alias_history(self, store: Any) -> None:
        for _ in range(3):
            register(store)
        reg = store.registry
        with acting_as("alice"):
            reg.set_alias("bikes", "bike-demand", "champion", 1)
            reg.set_alias("bikes", "bike-demand", "champion", 2)
            reg.set_alias("bikes", "bike-demand", "champion", 3)
        assert reg.rollback_alias("bikes", "bike-demand", "champion") == (3, 2)
        assert reg.rollback_alias("bikes", "bike-demand", "champion") == (2, 1)
        assert reg.get_model("bikes", "bike-demand").aliases == {"champion": 1}
        with pytest.raises(InvalidState, match="no previous holder"):
            reg.rollback_alias("bikes", "bike-demand", "champion")
        history = reg.alias_history("bikes", "bike-demand", "champion")
        assert [(m.action, m.version, m.previous) for m in history] == [
            ("set", 1, None), ("set", 2, 1), ("set", 3, 2), ("rollback", 2, 3), ("rollback", 1, 2)]
        assert history[0].actor == "alice"
        assert self.audit_actions(store).count("alias.rollback") == 2

    def test_gate_records_are_kept_and_a_passing_gate_moves_the_alias(self, store: Any) -> None:
        register(store)
        register(store)
        reg = store.registry
        reg.set_alias("bikes", "bike-demand", "champion", 1)
        failed = reg.record_gate("bikes", "bike-demand", 2, "champion", champion_version=1, passed=False,
                                 forced=False, reason="", report={"rules": []}, move_alias=False)
        assert reg.get_model("bikes", "bike-demand").aliases == {"champion": 1}
        with acting_as("bob"):
            reg.record_gate("bikes", "bike-demand", 2, "champion", champion_version=1, passed=False,
                            forced=True, reason="hotfix", report={"rules": []}, move_alias=True)
        assert reg.get_model("bikes", "bike-demand").aliases == {"champion": 2}
        evaluations = reg.list_gate_evaluations("bikes", "bike-demand", 2)
        assert [(e.id, e.passed, e.forced) for e in evaluations][0] == (failed.id, False, False)
        assert evaluations[1].forced and evaluations[1].reason == "hotfix" and evaluations[1].actor == "bob"
        forced = [e for e in self.audit_events(store) if e.action == "gate.forced"]
        assert forced[0].actor == "bob" and forced[0].details["reason"] == "hotfix"

    def test_bad_names_are_refused_naming_the_field(self, store: Any) -> None:
        reg = store.registry
        with pytest.raises(InvalidArgument) as info:
            reg.create_model("bikes", "bad name!")
        assert info.value.field == "name"
        register(store)
        for alias in ("latest", "12", "no spaces"):
            with pytest.raises(InvalidArgument) as info:
                reg.set_alias("bikes", "bike-demand", alias, 1)
            assert info.value.field == "alias"
        with pytest.raises(InvalidArgument) as info:
            reg.set_alias("bikes", "bike-demand", "champion", 0)
        assert info.value.field == "version"
        with pytest.raises(AlreadyExists):
            reg.create_model("bikes", "bike-demand")
        assert reg.get_model("bikes", "bike-demand").aliases == {}

    def test_listing_pages_through_models_in_name_order(self, store: Any) -> None:
        reg = store.registry
        for i in range(7):
            reg.create_model("bikes", f"model-{i:02d}", tags={"team": "a" if i % 2 else "b"})
        reg.create_model("other", "model-99")
        first = reg.list_models("bikes", max_results=3)
        assert [m.name for m in first] == ["model-00", "model-01", "model-02"]
        rest = reg.list_models("bikes", max_results=10, page_token=first.next_page_token)
        assert [m.name for m in rest] == [f"model-{i:02d}" for i in range(3, 7)] and rest.next_page_token is None
        assert [m.name for m in reg.list_models("bikes", tag=("team", "a"))] == ["model-01", "model-03", "model-05"]
        assert [m.name for m in reg.list_models("bikes", name_contains="-0_")] == []
        assert len(reg.list_models("bikes", name_contains="del-0")) == 7
        with pytest.raises(InvalidArgument) as info:
            reg.list_models("bikes", page_token="garbage!")
        assert info.value.field == "page_token"

    def test_concurrent_alias_moves_queue_and_keep_a_consistent_history(self, store: Any) -> None:
        for _ in range(4):
            register(store)
        moves = [1 + i % 4 for i in range(24)]
        with ThreadPoolExecutor(12) as pool:
            list(pool.map(lambda version: store.registry.set_alias("bikes", "bike-demand", "champion", version),
                          moves))
        history = store.registry.alias_history("bikes", "bike-demand", "champion")
        holder = store.registry.get_model("bikes", "bike-demand").aliases["champion"]
        assert history[-1].version == holder
        # each move replaced exactly the holder the previous move left
        assert all(later.previous == earlier.version for earlier, later in zip(history, history[1:], strict=False))
        assert self.audit_actions(store).count("alias.set") == len(history)

    def test_deleting_a_version_removes_its_lineage_links(self, store: Any) -> None:
        register(store)
        mv = store.registry.get_version("bikes", "bike-demand", 1)
        store.add_lineage(("dataset_version", "d" * 32), ("model_version", mv.id), "train")
        store.registry.delete_version("bikes", "bike-demand", 1)
        assert store.list_lineage(("model_version", mv.id)) == []

    def test_a_gate_verdict_on_a_replaced_champion_moves_nothing(self, store: Any) -> None:
        for _ in range(3):
            register(store)
        reg = store.registry
        reg.set_alias("bikes", "bike-demand", "champion", 2)  # moved while a gate compared 3 with 1
        with pytest.raises(InvalidState, match="promote again"):
            reg.record_gate("bikes", "bike-demand", 3, "champion", champion_version=1, passed=True,
                            forced=False, reason="", report={}, move_alias=True)
        assert reg.get_model("bikes", "bike-demand").aliases == {"champion": 2}
        assert reg.list_gate_evaluations("bikes", "bike-demand") == []

    def test_a_challenger_is_gated_against_the_champion(self, store: Any) -> None:
        for _ in range(3):
            register(store)
        reg = store.registry
        reg.set_alias("bikes", "bike-demand", "champion", 1)
        done = reg.record_gate("bikes", "bike-demand", 2, "challenger", champion_version=1, passed=True,
                               forced=False, reason="", report={}, move_alias=True, against="champion")
        assert done.champion_version == 1
        assert reg.get_model("bikes", "bike-demand").aliases == {"champion": 1, "challenger": 2}
        reg.set_alias("bikes", "bike-demand", "champion", 2)  # the champion moved while 3 was gated against 1
        with pytest.raises(InvalidState, match="promote again"):
            reg.record_gate("bikes", "bike-demand", 3, "challenger", champion_version=1, passed=True,
                            forced=False, reason="", report={}, move_alias=True, against="champion")
        assert reg.get_model("bikes", "bike-demand").aliases == {"champion": 2, "challenger": 2}
