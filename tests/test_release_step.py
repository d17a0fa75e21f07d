"""The release step of ``harlite build --release``: it replaces only a bundle harlite released there (with
--force), never deletes anything else, and releases a bundle whose parity check failed only when told."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harlite.bundle.loader import load_bundle
from harlite.errors import HarliteError
from harlite.pipeline.build import release_if_passed
from harlite.pipeline.release import check_release_target, release_bundle


@pytest.fixture
def run_dir(tiny_bundle: Path, tmp_path: Path) -> Path:
    """A finished run folder: its bundle, report and a picture."""
    run = tmp_path / "run"
    shutil.copytree(tiny_bundle, run / "bundle")
    (run / "report.md").write_text("# report\n")
    (run / "report_timeline.png").write_bytes(b"\x89PNG")
    return run


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_folder_harlite_did_not_release_is_never_deleted(run_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "models" / "mine"
    (target / "notes").mkdir(parents=True)
    (target / "notes" / "thesis.tex").write_text("three years of work")
    before = tree(target)
    for force in (False, True):
        with pytest.raises(HarliteError, match=r"harlite did not release there \(e.g. notes"):
            release_bundle(run_dir, target, force)
    assert tree(target) == before


def test_a_release_is_replaced_only_with_force_and_only_if_all_its_files_are_harlites(
    run_dir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "models" / "mine"
    release_bundle(run_dir, target, force=False)
    assert load_bundle(target).labels and (target / "report.md").is_file()
    with pytest.raises(HarliteError, match="already holds a bundle; pass --force"):
        check_release_target(target, force=False)
    (run_dir / "report.md").write_text("# report, again\n")
    release_bundle(run_dir, target, force=True)
    assert (target / "report.md").read_text() == "# report, again\n"
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no staging left behind
    (target / "my_plot.png").write_bytes(b"mine")
    with pytest.raises(HarliteError, match="my_plot.png"):
        release_bundle(run_dir, target, force=True)
    assert (target / "my_plot.png").read_bytes() == b"mine" and load_bundle(target).labels


def test_a_bundle_whose_parity_failed_is_released_only_when_told(run_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "release"
    failed = {"parity": {"passed": False}}
    assert release_if_passed(failed, run_dir, target, force=False, release_failed=False) is False
    assert not target.exists()
    assert release_if_passed(failed, run_dir, target, force=False, release_failed=True) is True
    assert load_bundle(target).labels
