"""The one loader of bundles: a validated manifest, confined artifact paths, sha256, checked C sources.

``load_bundle(path)`` reads ``manifest.json`` (the folder or the file itself) with
``harlite.bundle.manifest.read_manifest``, confines every artifact to the bundle folder and verifies
each one's size and sha256, and that the generated C sources are what harlite makes of the int8 model
and the manifest. Any problem is one ``BundleError`` line naming the file or field and the fix. What it
returns, a ``Bundle``, hands out only verified artifacts: ``path(kind)``, ``read(kind)``,
``keras_model()``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from harlite.bundle.keras import load_keras
from harlite.bundle.manifest import ALTERED, MAX_ARTIFACT_BYTES, REBUILD, manifest_path, read_manifest
from harlite.codegen.sources import MODEL_ARRAY_KINDS, SOURCE_KINDS, generated_sources, model_data_sources
from harlite.codegen.targets import DEFAULT_TARGET
from harlite.core.frontend import FrontEndSpec
from harlite.errors import BundleError
from harlite.io.hashing import file_state, known, remember, sha256_file
from harlite.io.limits import open_regular
from harlite.io.schema import show


@dataclass
class Bundle:
    """A validated bundle: its folder, its manifest, and verified access to its artifacts."""

    root: Path  # the bundle folder, resolved
    manifest_file: Path
    manifest: dict[str, Any]
    _checked_sources: bool = field(default=False, repr=False)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.manifest["labels"])

    @property
    def kinds(self) -> tuple[str, ...]:
        """The artifact kinds the manifest lists."""
        return tuple(self.manifest["artifacts"])

    def has(self, kind: str) -> bool:
        return kind in self.manifest["artifacts"]

    def frontend(self) -> FrontEndSpec:
        """The bundle's front end (checked at load)."""
        return FrontEndSpec.from_dict(self.manifest["frontend"])

    def entry(self, kind: str) -> dict[str, Any]:
        """The manifest's record of artifact ``kind``; a clear error when the bundle has none."""
        if kind not in self.manifest["artifacts"]:
            raise BundleError(f"{self.manifest_file} lists no '{kind}' artifact: {REBUILD}.")
        return self.manifest["artifacts"][kind]

    def _resolve(self, kind: str) -> Path:
        """The artifact's path, confined to the bundle folder (checked before any file is opened)."""
        name = self.entry(kind)["file"]
        pure = PurePosixPath(name)
        if pure.is_absolute() or ".." in pure.parts or not pure.parts:
            raise BundleError(f"{self.manifest_file}: artifacts.{kind}.file {show(name)} leaves the bundle folder "
                              f"(artifact paths stay inside it); {ALTERED}.")  # fmt: skip
        path = self.root.joinpath(*pure.parts)
        try:
            resolved = path.resolve(strict=True)
        except FileNotFoundError:
            raise BundleError(f"{path} is missing: the bundle is incomplete or was altered; {REBUILD}.") from None
        except (OSError, RuntimeError) as e:  # a symlink loop
            raise BundleError(f"{path} cannot be resolved ({e}); {ALTERED}.") from None
        if not resolved.is_relative_to(self.root):
            raise BundleError(f"{path} is a link to {resolved}, outside the bundle folder; {ALTERED}.")
        return resolved

    def _check(self, kind: str, path: Path, size: int, digest: str) -> None:
        entry = self.entry(kind)
        if size != entry["bytes"]:
            raise BundleError(f"{path} is {size} bytes but the manifest records {entry['bytes']}: the bundle was "
                              f"altered or is incomplete; {REBUILD}.")  # fmt: skip
        if digest != entry["sha256"]:
            raise BundleError(f"{path} does not match its sha256 in the manifest (the file holds {digest[:16]}..., "
                              f"the manifest {entry['sha256'][:16]}...): the bundle was altered or is incomplete; "
                              f"{REBUILD}.")  # fmt: skip

    def _verified_path(self, kind: str) -> Path:
        path = self._resolve(kind)
        with open_regular(path, BundleError) as f:  # a regular file (no device, FIFO or folder)
            size = os.fstat(f.fileno()).st_size
        self._check(
            kind, path, size, sha256_file(path, MAX_ARTIFACT_BYTES) if size == self.entry(kind)["bytes"] else ""
        )
        return path

    def _verified_bytes(self, kind: str) -> bytes:
        path = self._resolve(kind)
        expected = self.entry(kind)["bytes"]
        with open_regular(path, BundleError) as f:
            before = os.fstat(f.fileno())
            data = f.read(expected + 1) if before.st_size == expected else b""
            unchanged = file_state(path, before) == file_state(path, os.fstat(f.fileno()))
        trusted = unchanged and known(file_state(path, before)) == self.entry(kind)["sha256"]
        self._check(kind, path, before.st_size if not data else len(data),
                    self.entry(kind)["sha256"] if trusted else hashlib.sha256(data).hexdigest())  # fmt: skip
        if unchanged:
            remember(file_state(path, before), self.entry(kind)["sha256"])
        return data

    @property
    def target(self) -> str:
        """The TFLM build (``harlite.codegen.targets``) the bundle's model was written for."""
        return self.manifest.get("tflm", {}).get("target", DEFAULT_TARGET)

    def path(self, kind: str) -> Path:
        """The verified path of artifact ``kind``: inside the bundle, a regular file, size and sha256 as
        recorded (and for generated C sources: what harlite makes of the int8 model and the manifest)."""
        path = self._verified_path(kind)
        if kind in SOURCE_KINDS:
            self.check_sources()
        return path

    def read(self, kind: str) -> bytes:
        """The verified bytes of artifact ``kind``, read once: what is checked is what is returned."""
        data = self._verified_bytes(kind)
        if kind in SOURCE_KINDS:
            self.check_sources()
        return data

    def verify(self) -> None:
        """Check every listed artifact (confined, regular, size, sha256) and the generated C sources."""
        for kind in self.manifest["artifacts"]:
            self._verified_path(kind)
        self.check_sources()

    def check_sources(self) -> None:
        """The generated C sources (TFLM's model array, config header and op resolver; the C engine's files)
        must be what ``harlite.codegen.sources.generated_sources`` makes of the verified int8 model and the
        manifest, byte for byte but for their first comment; the engine figures must be the engine's."""
        kinds = [k for k in SOURCE_KINDS if self.has(k)]
        if self._checked_sources or not kinds:
            return
        key = (json.dumps(self.manifest, sort_keys=True), *(self.entry(k)["sha256"] for k in ("int8", *kinds)))
        if key not in _SOURCES_MATCH:
            model = self._verified_bytes("int8")
            self._compare_sources([k for k in kinds if k in MODEL_ARRAY_KINDS],
                                  dict(zip(MODEL_ARRAY_KINDS, model_data_sources(model, ""))))  # fmt: skip
            others = [k for k in kinds if k not in MODEL_ARRAY_KINDS]
            expected, figures = generated_sources(self.manifest, model) if others else ({}, {})
            self._compare_sources(others, expected)
            recorded = self.manifest.get("engine", {})
            changed = [k for k, v in recorded.items() if k in figures and figures[k] != v]
            if any(k.startswith("engine_") for k in kinds) and changed:
                raise BundleError(f"{self.manifest_file}: field engine.{changed[0]} is {show(recorded[changed[0]])} "
                                  f"but the C engine of the int8 model gives {show(figures[changed[0]])}; {ALTERED}.")  # fmt: skip
            _SOURCES_MATCH.add(key)
        for kind in ("int8", *kinds):
            self._verified_path(kind)  # the files still hold what was compared
        self._checked_sources = True

    def _compare_sources(self, kinds: list[str], expected: dict[str, str]) -> None:
        for kind in kinds:
            text = self._verified_bytes(kind).decode("utf-8", errors="replace")
            if _without_comment(text) != _without_comment(expected[kind]):
                what = (
                    "the model array differs from the int8 model byte for byte"
                    if kind in MODEL_ARRAY_KINDS
                    else "it differs from what this harlite generates from the int8 model and the manifest"
                )
                raise BundleError(f"{self.root / self.entry(kind)['file']} is not the C source of "
                                  f"{self.entry('int8')['file']} ({what}): the bundle was altered or made by "
                                  f"another harlite; {REBUILD}.")  # fmt: skip

    def keras_model(self) -> Any:
        """The bundle's float Keras model, loaded safely (``load_keras``) from its verified bytes."""
        return load_keras(self.read("keras"), str(self.root / self.entry("keras")["file"]))


# (manifest JSON, int8 and sources' sha256...) whose C sources were found to be what harlite generates
_SOURCES_MATCH: set[tuple[str, ...]] = set()


def _without_comment(source: str) -> str | None:
    """A generated source without its comment line (the first line that is one whole ``/* ... */``
    comment, among the first three); None if it has none (or the comment could end early and hide code)."""
    lines = source.split("\n")
    for i, line in enumerate(lines[:3]):
        if line.startswith("/* ") and line.endswith(" */") and "*/" not in line[3:-3]:
            return "\n".join(lines[:i] + lines[i + 1 :])
    return None


def load_bundle(path: str | Path, verify: bool = True) -> Bundle:
    """The bundle at ``path`` (its folder or manifest.json), validated; with ``verify`` (the default)
    every artifact is checked now (paths, sizes, sha256, the C array), else each on first use."""
    file = manifest_path(path)
    manifest = read_manifest(file)
    bundle = Bundle(root=file.parent.resolve(), manifest_file=file, manifest=manifest)
    for kind in manifest["artifacts"]:
        bundle._resolve(kind)  # every path confined, even with verify=False
    if verify:
        bundle.verify()
    return bundle
