"""Safe Keras loading: the one way harlite loads a ``.keras`` model (a bundle's or a run folder's).

``load_keras(path or bytes)`` accepts only the zip format with exactly ``config.json``,
``metadata.json`` and ``model.weights.h5``, every class in its config on an allowlist
(``KERAS_CLASSES``: no ``Lambda``, no module outside Keras), weights without external HDF5 links, size
and ratio caps, then tf-keras with ``safe_mode=True`` on a private copy. An HDF5 file or SavedModel is
refused before tf-keras sees it: tf-keras ignores ``safe_mode`` for anything that is not a zip and runs
the ``Lambda`` code inside.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harlite.bundle.manifest import MAX_ARTIFACT_BYTES, REBUILD
from harlite.errors import BundleError
from harlite.io.limits import KiB, MiB, read_bounded, zip_member
from harlite.io.schema import no_json_constants, show
from harlite.tf import keras

KERAS_MEMBERS = {"config.json": 1 * MiB, "metadata.json": 64 * KiB, "model.weights.h5": MAX_ARTIFACT_BYTES}
MAX_KERAS_RATIO = 200
# module -> class names a harlite model's config.json may hold (harlite.pipeline.models, saved by harlite.pipeline.train.save_model;
# QAT saves the plain deployable model). Everything else, Lambda above all, is refused.
KERAS_CLASSES: dict[str, frozenset[str]] = {
    "keras.layers": frozenset({"InputLayer", "Conv1D", "BatchNormalization", "ReLU", "LSTM", "Dense"}),
    "keras.initializers": frozenset({"GlorotUniform", "Orthogonal", "Zeros", "Ones"}),
    "keras.optimizers": frozenset({"Adam"}),  # in compile_config, which harlite never compiles from
    "keras.optimizers.schedules": frozenset({"CosineDecay"}),
    "tf_keras.src.engine.functional": frozenset({"Functional"}),
}
ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def load_keras(source: str | Path | bytes, name: str | None = None) -> Any:
    """A harlite Keras model from a ``.keras`` file or its bytes, without running code from the file.

    Refused with a BundleError: anything but the zip ``.keras`` format (HDF5 ``.h5``, a SavedModel
    folder, a pickle), other members than config/metadata/weights, any class outside ``KERAS_CLASSES``
    (``Lambda``, a module to import), HDF5 external links in the weights, archives over the caps.
    """
    if isinstance(source, bytes):
        data, name = source, name or "the model"
    else:
        path = Path(source)
        name = name or str(path)
        if path.is_dir():
            raise BundleError(f"{name} is a folder (a TensorFlow SavedModel?): harlite loads only the zip .keras "
                              "format that 'harlite train' writes, since other formats can run code.")  # fmt: skip
        data = read_bounded(path, MAX_ARTIFACT_BYTES, compressed=False, error=BundleError)
    check_keras_archive(data, name)
    with tempfile.TemporaryDirectory(prefix="harlite-keras-") as tmp:
        private = Path(tmp) / "model.keras"
        private.write_bytes(data)  # load exactly the checked bytes, from a folder only this process uses
        try:
            model = keras().models.load_model(private, compile=False, safe_mode=True, custom_objects={})
        except Exception as e:  # tf-keras raises many types for a bad file; none may become a traceback
            first = str(e).splitlines()[0] if str(e) else ""
            raise BundleError(f"{name} is not a loadable harlite Keras model ({type(e).__name__}: {first[:200]}); "
                              f"{REBUILD}.") from None  # fmt: skip
    return model


def check_keras_archive(data: bytes, name: str) -> dict[str, bytes]:
    """The members of a ``.keras`` zip if it is one harlite may load (see ``load_keras``); else BundleError."""
    if data.startswith(HDF5_MAGIC):
        raise BundleError(f"{name} is an HDF5 (.h5) Keras file, not the zip .keras format: harlite refuses it "
                          "because loading HDF5 models can run code stored in them; re-save the model as .keras "
                          "with harlite.")  # fmt: skip
    if not data.startswith(ZIP_MAGIC):
        raise BundleError(f"{name} is not a zip .keras archive (it starts with {data[:8]!r}): harlite loads only "
                          "the .keras format that 'harlite train' writes.")  # fmt: skip
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise BundleError(f"{name} is a damaged zip ({e}): {REBUILD}.") from None
    names = [i.filename for i in infos]
    if sorted(names) != sorted(KERAS_MEMBERS):
        extra = sorted(set(names) - set(KERAS_MEMBERS)) or sorted(set(KERAS_MEMBERS) - set(names))
        raise BundleError(f"{name} holds {names[:6]}: a harlite .keras holds exactly {', '.join(KERAS_MEMBERS)} "
                          f"(unexpected or missing: {', '.join(extra) or 'a repeated member'}); {REBUILD}.")  # fmt: skip
    members = {}
    for info in infos:
        with zip_member(archive, info, KERAS_MEMBERS[info.filename], MAX_KERAS_RATIO, name, BundleError) as f:
            members[info.filename] = f.read()
    try:
        config = json.loads(members["config.json"], parse_constant=no_json_constants)
        json.loads(members["metadata.json"])
    except (ValueError, RecursionError) as e:
        raise BundleError(f"{name}: its config.json or metadata.json is not valid JSON ({e}); {REBUILD}.") from None
    for problem in _config_problems(config):
        raise BundleError(f"{name} is refused: its config.json {problem}; harlite loads only its own "
                          f"architectures, which are plain Keras layers (no Lambda, no custom code).")  # fmt: skip
    _check_weights(members["model.weights.h5"], name)
    return members


def _config_problems(config: Any, path: str = "") -> Iterable[str]:
    """What in a Keras config.json is outside ``KERAS_CLASSES`` (first problem first)."""
    if isinstance(config, list):
        for i, item in enumerate(config):
            yield from _config_problems(item, f"{path}[{i}]")
        return
    if not isinstance(config, dict):
        return
    if "class_name" in config:
        module, cls = config.get("module"), config["class_name"]
        registered = config.get("registered_name")
        if not isinstance(module, str) or not isinstance(cls, str) or cls not in KERAS_CLASSES.get(module, ()):
            yield f"uses {show(cls)} from module {show(module)} at {path or 'the top'}"
        elif registered not in (None, cls):
            yield f"registers {show(registered)} for {cls} at {path or 'the top'}"
    for key in ("function", "function_type", "module_name"):
        if key in config:
            yield f"holds a '{key}' entry (code) at {path or 'the top'}"
    for key, value in config.items():
        yield from _config_problems(value, f"{path}.{key}" if path else key)


def _check_weights(data: bytes, name: str) -> None:
    """The weights file must be plain HDF5 groups and datasets: no external links, external storage or
    virtual datasets (which make HDF5 read other files)."""
    import h5py

    problems: list[str] = []

    def visit(item_name: str, link: Any) -> None:
        if not isinstance(link, h5py.HardLink | h5py.SoftLink):
            problems.append(f"{item_name} is a {type(link).__name__}")

    try:
        with h5py.File(io.BytesIO(data), "r") as h5:
            h5.visititems_links(visit)
            for item_name in _datasets(h5):
                dataset = h5[item_name]
                if dataset.external or dataset.is_virtual:
                    problems.append(f"{item_name} stores its data in other files")
    except OSError as e:
        raise BundleError(f"{name}: model.weights.h5 is not valid HDF5 ({e}); {REBUILD}.") from None
    if problems:
        raise BundleError(f"{name} is refused: in model.weights.h5, {problems[0]} (HDF5 links out of the file "
                          f"can read other files); {REBUILD}.")  # fmt: skip


def _datasets(h5: Any) -> list[str]:
    import h5py

    found: list[str] = []
    h5.visititems(lambda item_name, obj: found.append(item_name) if isinstance(obj, h5py.Dataset) else None)
    return found
