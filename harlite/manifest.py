"""Files and the bundle manifest: atomic writes, sha256, no silent overwrite."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import click

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_writable(path: str | Path, force: bool) -> Path:
    """Refuse to overwrite an existing file unless ``force``; returns the path."""
    path = Path(path)
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; pass --force to overwrite it or choose another --out.")
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the user's usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Atomically write UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (numpy scalars and arrays allowed)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def read_json(path: str | Path) -> Any:
    """Read JSON, turning a missing or broken file into a clear error."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise click.ClickException(f"{path} does not exist.") from None
    except json.JSONDecodeError as e:
        raise click.ClickException(f"{path} is not valid JSON (line {e.lineno}): {e.msg}.") from None


def artifact_entry(path: str | Path, root: str | Path) -> dict[str, Any]:
    """Manifest entry for one artifact: file name relative to ``root``, bytes, sha256."""
    path = Path(path)
    return {"file": str(path.relative_to(root)), "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def load_manifest(bundle: str | Path, require: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read ``bundle/manifest.json`` (``bundle`` may be the folder or the file) and check fields.

    ``require`` lists dotted field paths, e.g. ``("quantization.input.scale",)``; a missing one is a
    clear error naming the field.
    """
    bundle = Path(bundle)
    path = bundle / MANIFEST if bundle.is_dir() else bundle
    if not path.exists():
        raise click.ClickException(
            f"{path} does not exist: point to a bundle folder made by 'harlite convert' or 'harlite build'."
        )
    manifest = read_json(path)
    for field in require:
        node: Any = manifest
        for part in field.split("."):
            if not isinstance(node, dict) or part not in node:
                raise click.ClickException(
                    f"{path} lacks the field '{field}': rebuild the bundle with 'harlite convert'."
                )
            node = node[part]
    manifest["_root"] = str(path.parent)
    return manifest


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
