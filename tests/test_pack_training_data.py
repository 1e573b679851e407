"""scripts/pack_training_data.py: the packed copy trains on the same pixels, split and patches as the originals."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skimage_data

from training import pack as pack_training_data
from training.data import load_training_data


@pytest.fixture
def folders(tmp_path: Path) -> list[Path]:
    """Two folders as real data comes: RGB PNG, BMP, grayscale, 16-bit PNG and names whose order hinges on '.'."""
    photos = tmp_path / "photos"
    t91 = tmp_path / "t91"
    photos.mkdir()
    t91.mkdir()
    astronaut = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    chelsea = cv2.cvtColor(skimage_data.chelsea(), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(photos / "a.png"), astronaut[:200, :240])
    cv2.imwrite(str(photos / "a1.png"), skimage_data.camera()[:160, :200])  # gray
    cv2.imwrite(str(photos / "b16.png"), (chelsea[:150, :180].astype(np.uint16) * 257 + 3))  # 16-bit
    rgba = np.dstack([astronaut[200:360, 100:300], np.full((160, 200), 7, np.uint8)])
    cv2.imwrite(str(photos / "c_alpha.png"), rgba)  # the loader drops alpha
    for i in range(1, 12):
        cv2.imwrite(str(t91 / f"t{i}.bmp"), np.roll(astronaut, 17 * i, axis=1)[100 : 100 + 96 + i, 50 : 50 + 120])
    (t91 / "notes.txt").write_text("not an image")
    return [photos, t91]


def test_packed_copy_is_the_same_training_data(folders: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "packed"
    assert pack_training_data.main([*map(str, folders), "--out", str(out)]) == 0
    assert "15 images" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "t91").iterdir())[:2] == ["t1.webp", "t10.webp"]
    assert all(p.suffix == ".webp" for p in out.rglob("*") if p.is_file())

    options = {"patch_size": 16, "val_fraction": 0.2, "val_seed": 3, "skip_small": True}
    original = load_training_data(folders, **options)
    packed = load_training_data([out / f.name for f in folders], **options)
    assert packed.description["validation"] == original.description["validation"]
    assert [i.name for i in packed.train.images] == [i.name for i in original.train.images]
    for a, b in zip(original.train.images, packed.train.images, strict=True):
        assert np.array_equal(a.hr, b.hr), a.name
    for index in (0, 5, 31, 200):
        for x, y in zip(original.train.patch_uint8(index), packed.train.patch_uint8(index), strict=True):
            assert np.array_equal(x, y)
    for a, b in zip(original.val, packed.val, strict=True):
        assert np.array_equal(a.lr, b.lr) and np.array_equal(a.hr, b.hr)
    assert packed.description["validation"]["val_images"]  # the split held images out, the same ones
    assert packed.description["skipped_small"] == original.description["skipped_small"]


@pytest.mark.parametrize(
    "case, expected",
    [
        ("over budget", "--max_mb: the packed images take"),
        ("missing folder", "nowhere: training folder not found"),
        ("same folder name twice", "two training folders are named photos"),
        ("stem clash", "two images are named a "),
        ("order would change", "renamed to .webp its images would change order"),
        ("other files in the target", "holds 1 other files (e.g. old.webp)"),
    ],
)
def test_bad_input_is_refused_and_nothing_written(
    folders: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, expected: str
) -> None:
    out = tmp_path / "packed"
    args = [*map(str, folders), "--out", str(out)]
    if case == "over budget":
        args += ["--max_mb", "0.01"]
    elif case == "missing folder":
        args[0] = str(tmp_path / "nowhere")
    elif case == "same folder name twice":
        (tmp_path / "other" / "photos").mkdir(parents=True)
        args.insert(1, str(tmp_path / "other" / "photos"))
    elif case == "stem clash":
        cv2.imwrite(str(folders[0] / "a.bmp"), np.zeros((40, 40, 3), np.uint8))
    elif case == "order would change":
        cv2.imwrite(str(folders[0] / "a.q.png"), np.zeros((40, 40, 3), np.uint8))
    else:
        (out / "t91").mkdir(parents=True)
        (out / "t91" / "old.webp").write_bytes(b"")
    assert pack_training_data.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1
    assert not out.exists() or [p.name for p in out.rglob("*") if p.is_file()] == ["old.webp"]


def files_under(folder: Path) -> dict[str, bytes | None]:
    return {str(p): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize(
    "case, expected",
    [
        ("out is a training folder", "is inside the training folder"),
        ("out holds a training folder", "photos is the training folder"),
        ("out inside a training folder", "is inside the training folder"),
        ("out under a file", "file.txt is not a folder"),
        ("max_mb not a number", "--max_mb nan: must be a positive number"),
        ("max_mb infinite", "--max_mb inf: must be a positive number"),
    ],
)
def test_out_or_budget_that_would_spoil_the_originals_is_refused(
    folders: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, expected: str
) -> None:
    (tmp_path / "file.txt").write_text("mine")
    out = {
        "out is a training folder": folders[0],
        "out holds a training folder": tmp_path,
        "out inside a training folder": folders[1] / "packed",
        "out under a file": tmp_path / "file.txt" / "packed",
    }.get(case, tmp_path / "packed")
    args = [*map(str, folders), "--out", str(out)]
    if case.startswith("max_mb"):
        args += ["--max_mb", "inf" if case.endswith("infinite") else "nan"]
    before = files_under(tmp_path)
    assert pack_training_data.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1
    assert files_under(tmp_path) == before


def test_packed_copies_already_there_are_replaced_only_with_overwrite(
    folders: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "packed"
    (out / "t91").mkdir(parents=True)
    mine = out / "t91" / "t1.webp"
    mine.write_bytes(b"my copy")
    args = [str(folders[1]), "--out", str(out)]
    with monkeypatch.context() as patched:
        patched.setattr(pack_training_data, "imread_uint", lambda *a: pytest.fail("decoded before the checks"))
        assert pack_training_data.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert f"--out {mine}: exists; give --overwrite to replace it, or another path" in err and len(err.splitlines()) == 1
    assert mine.read_bytes() == b"my copy" and [p.name for p in out.rglob("*") if p.is_file()] == ["t1.webp"]
    source = folders[1] / "t1.bmp"
    before = source.read_bytes()
    mine.unlink()
    mine.symlink_to(source)  # the copy's place is a link to the image itself: --overwrite would write onto it
    assert pack_training_data.main([*args, "--overwrite"]) == 2
    assert f"--out: {mine} is the training image {source}" in capsys.readouterr().err and source.read_bytes() == before
    mine.unlink()
    mine.write_bytes(b"my copy")
    assert pack_training_data.main([*args, "--overwrite"]) == 0
    packed = cv2.imread(str(mine), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(packed, cv2.imread(str(folders[1] / "t1.bmp"), cv2.IMREAD_UNCHANGED))
