"""The environment recorded with runs."""

from __future__ import annotations

from importlib.metadata import distributions

from conveyor.tracking import environment


def test_the_package_list_is_what_the_metadata_parser_reads() -> None:
    # the fast header scan must give the digest the full e-mail parser would
    parsed = {
        f"{(d.metadata['Name'] or '').lower()}=={d.version}" for d in distributions() if d.metadata["Name"]
    }
    assert environment.packages.__wrapped__() == tuple(sorted(parsed))  # uncached: the venv may have changed
    assert len(parsed) > 10


class _Dist:
    def __init__(self, text: str) -> None:
        self.text = text

    def read_text(self, name: str) -> str | None:
        return self.text if name == "METADATA" else None


def test_headers_are_read_up_to_the_body_and_the_first_one_counts() -> None:
    text = (
        "Metadata-Version: 2.1\nName:  Some-Pkg\nSummary: a long\n  folded Name: no\n"
        "Version: 1.2\nName: second\n\nName: body\nVersion: 9\n"
    )
    assert environment._name_and_version(_Dist(text)) == ("Some-Pkg", "1.2")
    assert environment._name_and_version(_Dist("Metadata-Version: 2.1\n\nName: x\n")) == (None, None)
