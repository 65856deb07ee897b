"""Model packages: the model's files plus a manifest, stored in the content store.

A package is a folder::

    conveyor-model.json     flavour, format, framework versions, Python version,
                            requirements, signature, the BLAKE3 hash of every file
    model/...               the flavour's files
    input_example.parquet   (or .npy) the example the signature was inferred from

Every file is a content-addressed blob, so a model logged twice is stored once.
The package is named by the digest of its file list. Loading downloads each
file, checks it against its hash (in the store *and* in the package manifest)
and refuses the whole package if any file was modified, before a single byte
reaches a deserialiser.
"""

from __future__ import annotations

import json
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.core.entities import ArtifactFile
from conveyor.core.errors import ArtifactCorrupted, InvalidArgument
from conveyor.core.uris import join_under
from conveyor.registry import flavours
from conveyor.registry.signature import Signature, infer_signature
from conveyor.stores.artifacts.cas import ContentStore

MANIFEST_FILE = "conveyor-model.json"
PACKAGE_FORMAT = "conveyor.model/1"


@dataclass(frozen=True)
class Package:
    """A stored package: the digest that names it and its manifest."""

    digest: str
    manifest: dict[str, Any]

    @property
    def size(self) -> int:
        return int(self.manifest.get("size", 0))


def _write_example(example: Any, folder: Path) -> str | None:
    import numpy as np
    import pandas as pd

    if example is None:
        return None
    if isinstance(example, pd.Series):
        example = example.to_frame()
    if isinstance(example, pd.DataFrame):
        example.to_parquet(folder / "input_example.parquet", index=False)
        return "input_example.parquet"
    np.save(folder / "input_example.npy", np.asarray(example), allow_pickle=False)
    return "input_example.npy"


def _read_example(folder: Path, name: str | None) -> Any:
    if not name:
        return None
    if name.endswith(".parquet"):
        import pandas as pd

        return pd.read_parquet(folder / name)
    import numpy as np

    return np.load(folder / name, allow_pickle=False)


def _predictor(model: Any, input_example: Any) -> Any:
    """Something with ``predict`` for ``model`` (an ONNX graph gets an onnxruntime session)."""
    if flavours.detect(model) != "onnx":
        return model
    ort = flavours.require("onnxruntime", "onnx", "an ONNX model")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    columns = [str(c) for c in input_example.columns] if hasattr(input_example, "columns") else None
    return flavours.OnnxModel(session, columns)


def build(
    model: Any,
    content: ContentStore,
    *,
    input_example: Any = None,
    signature: Signature | None = None,
    format: str | None = None,
) -> Package:
    """Save ``model`` as a package in ``content``; identical files are not uploaded again."""
    if signature is None and input_example is not None:
        try:
            output = _predictor(model, input_example).predict(input_example)
        except Exception as exc:
            raise InvalidArgument(
                f"the model could not predict on its input_example ({type(exc).__name__}: {exc})",
                field="input_example",
            ) from None
        signature = infer_signature(input_example, output)
    with tempfile.TemporaryDirectory(prefix="conveyor-package-") as tmp:
        folder = Path(tmp)
        saved = flavours.save(model, folder, format, input_example)
        example = _write_example(input_example, folder)
        stored: list[ArtifactFile] = []
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            blob = content.put_file(path)
            stored.append(ArtifactFile(path=path.relative_to(folder).as_posix(), digest=blob.digest, size=blob.size))
    manifest: dict[str, Any] = {
        "format": PACKAGE_FORMAT,
        "flavour": saved.flavour,
        "model_format": saved.format,
        "runs_code_when_loaded": saved.format not in flavours.SAFE_FORMATS,
        "info": saved.info,
        "python": platform.python_version(),
        "requirements": sorted(saved.requirements),
        "signature": signature.to_dict() if signature else None,
        "input_example": example,
        "files": {f.path: f.digest for f in stored},
        "size": sum(f.size for f in stored),
    }
    data = json.dumps(manifest, sort_keys=True, separators=(",", ":"), default=str).encode()
    manifest_digest = content.put_bytes(data)
    files = [*stored, ArtifactFile(path=MANIFEST_FILE, digest=manifest_digest, size=len(data))]
    return Package(content.put_manifest(files), manifest)


def read_manifest(content: ContentStore, digest: str) -> tuple[dict[str, Any], list[ArtifactFile]]:
    """The package manifest and the stored file list of package ``digest``."""
    files = content.get_manifest(digest)
    entry = next((f for f in files if f.path == MANIFEST_FILE), None)
    if entry is None:
        raise InvalidArgument(f"blob {digest} is not a model package (no {MANIFEST_FILE})", field="package")
    manifest = json.loads(content.get_bytes(entry.digest))
    if manifest.get("format") != PACKAGE_FORMAT:
        raise InvalidArgument(
            f"package {digest} is in format {manifest.get('format')!r}; this Conveyor reads {PACKAGE_FORMAT!r}",
            field="package",
        )
    return manifest, files


class LoadedModel:
    """A model ready to predict, with its signature and the facts recorded about it.

    Attributes:
        model: the framework's own object (estimator, booster, ONNX session wrapper...).
        signature: what it takes and returns, or ``None`` when none was recorded.
        metadata: the package manifest plus the registry's record of the version.
        input_example: the example it was logged with, if any.
    """

    def __init__(self, model: Any, manifest: dict[str, Any], input_example: Any,
                 metadata: dict[str, Any] | None = None) -> None:
        self.model = model
        sig = manifest.get("signature")
        self.signature: Signature | None = Signature.from_dict(sig) if sig else None
        self.metadata: dict[str, Any] = {**manifest, **(metadata or {})}
        self.input_example = input_example
        self.flavour: str = manifest["flavour"]
        self.format: str = manifest["model_format"]

    def __repr__(self) -> str:
        label = self.metadata.get("uri") or self.flavour
        return f"<LoadedModel {label} flavour={self.flavour} format={self.format}>"

    def predict(self, data: Any) -> Any:
        """Predictions for ``data`` (a DataFrame for column signatures), as an array."""
        import numpy as np

        out = self.model.predict(data)
        return out if hasattr(out, "columns") else np.asarray(out)

    @property
    def has_proba(self) -> bool:
        return callable(getattr(self.model, "predict_proba", None))

    def predict_proba(self, data: Any) -> Any:
        import numpy as np

        if not self.has_proba:
            raise InvalidArgument(f"this {self.flavour} model has no predict_proba()", field="model")
        return np.asarray(self.model.predict_proba(data))


def load(content: ContentStore, digest: str, *, label: str = "the model",
         metadata: dict[str, Any] | None = None) -> LoadedModel:
    """Download, verify and load package ``digest``.

    Raises:
        ArtifactCorrupted: a file was modified or truncated; nothing was loaded.
        MissingExtra: the flavour's framework is not installed.
    """
    manifest, files = read_manifest(content, digest)
    expected = dict(manifest["files"])
    listed = {f.path: f.digest for f in files if f.path != MANIFEST_FILE}
    if listed != expected:
        raise ArtifactCorrupted(f"{label} was not loaded: its file list does not match its manifest")
    with tempfile.TemporaryDirectory(prefix="conveyor-load-") as tmp:
        folder = Path(tmp)
        # Every file is checked against its digest as it is fetched, and the digests
        # were just matched with the package manifest: nothing unverified is read.
        try:
            for item in files:
                if item.path != MANIFEST_FILE:
                    # Hard-linked from a local store after its hash is checked: read-only use.
                    content.get_file(item.digest, join_under(folder, item.path), link=True)
        except ArtifactCorrupted as exc:
            raise ArtifactCorrupted(f"{label} was not loaded: a file of its package was modified ({exc})") from None
        sig = manifest.get("signature") or {}
        columns = [c["name"] for c in sig.get("inputs", {}).get("columns", [])] or None
        model = flavours.load(folder, manifest["flavour"], manifest["model_format"], manifest["info"], columns)
        example = _read_example(folder, manifest.get("input_example"))
    return LoadedModel(model, manifest, example, metadata)

