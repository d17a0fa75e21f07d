"""Releasing a run's bundle: its files and report copied into a folder such as ``models/cnn_lstm``.

The release folder is replaced only when everything in it is a bundle harlite released there (the
files its manifest lists, the manifest, the report and its pictures) and ``force`` says so; a folder
holding anything else is refused, even with ``force``: harlite never deletes what it did not write. The
new release is assembled in a hidden folder beside the target and renamed into place; the old one is
then removed file by file, only the files its manifest named.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from harlite.bundle.manifest import MANIFEST, read_manifest
from harlite.errors import BundleError, HarliteError
from harlite.io.locks import LOCK_FILE
from harlite.pipeline.report import PICTURES

REPORT = "report.md"


def release_files(folder: Path) -> set[str] | None:
    """The relative paths a release in ``folder`` consists of, from its manifest; None without a valid one."""
    try:
        manifest = read_manifest(folder / MANIFEST)
    except BundleError:
        return None
    return {
        MANIFEST,
        REPORT,
        LOCK_FILE,
        *(name for _, name, _ in PICTURES),
        *(a["file"] for a in manifest["artifacts"].values()),
    }


def _contents(folder: Path) -> tuple[list[str], list[str]]:
    """(files, folders) under ``folder``, relative, symlinks not followed (a link counts as a file)."""
    files, folders = [], []
    for here, dirs, names in os.walk(folder):
        base = Path(here).relative_to(folder)
        for d in list(dirs):
            if (Path(here) / d).is_symlink():
                dirs.remove(d)
                names.append(d)
            else:
                folders.append(str(base / d))
        files += [str(base / n) for n in names]
    return files, folders


def check_release_target(release: Path, force: bool) -> None:
    """Refuse a release folder that holds anything harlite did not release there, or (without ``force``)
    a bundle it did."""
    if not os.path.lexists(release):
        return
    if release.is_symlink() or not release.is_dir():
        raise HarliteError(f"--release {release} is not a folder: name a new or empty folder, or a released bundle.")
    files, folders = _contents(release)
    if not files and not folders:
        return
    ours = release_files(release) or set()
    parents = {str(Path(f).parent) for f in ours}
    foreign = [f for f in files if f not in ours] + [d for d in folders if d not in parents]
    if foreign:
        raise HarliteError(f"--release {release} holds {len(foreign)} thing(s) harlite did not release there (e.g. "
                           f"{foreign[0]}); harlite never deletes them, even with --force: release into a new or empty "
                           "folder, or move them away.")  # fmt: skip
    if not force:
        raise HarliteError(f"{release} already holds a bundle; pass --force to replace it.")


def release_bundle(run_dir: Path, release: Path, force: bool) -> Path:
    """Copy ``run_dir``'s bundle and report into ``release`` (checked again just before it is replaced)."""
    check_release_target(release, force)
    release.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{release.name}.", suffix=".tmp", dir=release.parent))
    try:
        shutil.copytree(run_dir / "bundle", staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns(LOCK_FILE))
        for page in [run_dir / REPORT, *run_dir.glob("report_*.png")]:
            shutil.copy2(page, staging / page.name)
        old = None
        if os.path.lexists(release):
            check_release_target(release, force)
            old = Path(tempfile.mkdtemp(prefix=f".{release.name}.", suffix=".old", dir=release.parent))
            os.rename(release, old / "release")
        os.rename(staging, release)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if old is not None:
        _remove_release(old / "release")
        old.rmdir()
    return release


def _remove_release(folder: Path) -> None:
    """Delete a replaced release: the files its manifest named, then the folders they leave empty."""
    ours = release_files(folder) or set()
    for name in sorted(ours):
        (folder / name).unlink(missing_ok=True)
    for here, _, _ in sorted(os.walk(folder), key=lambda w: -len(w[0])):
        os.rmdir(here)  # an error here means something else appeared in it: left in place, loudly
