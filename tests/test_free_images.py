"""scripts/fetch_free_images.py: compositing, the blank rule, the seeded disjoint picks, output refusals, per-file
licenses, the content filters, and a whole run on tiny .deb files built here (never the real packages)."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from training import content
from training import free_images as ffi


def drawing(h: int, w: int, seed: int) -> np.ndarray:
    """A BGRA line drawing: coloured shapes and strokes on a transparent background."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 4), np.uint8)
    for _ in range(6):
        colour = (*map(int, rng.integers(0, 200, 3)), 255)
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.circle(img, center, int(rng.integers(10, 40)), colour, int(rng.choice([2, -1])))
        cv2.line(img, center, (int(rng.integers(0, w)), int(rng.integers(0, h))), colour, 3)
    return img


def blank(h: int, w: int) -> np.ndarray:
    """A BGRA drawing with one small dot: nearly blank."""
    img = np.zeros((h, w, 4), np.uint8)
    cv2.circle(img, (w // 2, h // 2), 3, (0, 0, 0, 255), -1)
    return img


def test_composite_on_white() -> None:
    bgra = np.zeros((2, 3, 4), np.uint8)
    bgra[0, 0] = (10, 20, 30, 255)  # opaque: its colour, as RGB
    bgra[0, 1] = (10, 20, 30, 0)  # transparent: white
    bgra[0, 2] = (0, 0, 0, 128)  # half: mid gray
    rgb = ffi.composite_on_white(bgra)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [30, 20, 10]
    assert rgb[0, 1].tolist() == [255, 255, 255]
    assert rgb[0, 2].tolist() == [127, 127, 127]
    gray_alpha = np.dstack([np.full((2, 2), 40, np.uint8), np.array([[255, 0], [0, 255]], np.uint8)])
    assert ffi.composite_on_white(gray_alpha)[:, :, 1].tolist() == [[40, 255], [255, 40]]
    assert ffi.composite_on_white(np.full((2, 2), 65535, np.uint16)).tolist() == [[[255] * 3] * 2] * 2
    bgr = np.dstack([np.full((2, 2), v, np.uint8) for v in (1, 2, 3)])
    assert ffi.composite_on_white(bgr)[0, 0].tolist() == [3, 2, 1]


def test_blank_rule() -> None:
    white = np.full((300, 300, 3), 255, np.uint8)
    assert ffi.is_nearly_blank(white)
    assert ffi.is_nearly_blank(ffi.composite_on_white(blank(300, 300)))  # too little ink
    assert ffi.is_nearly_blank(np.zeros((300, 300, 3), np.uint8))  # all ink, no edges
    assert not ffi.is_nearly_blank(ffi.composite_on_white(drawing(300, 300, 0)))


def test_fit_within_and_prepare() -> None:
    rgb = ffi.composite_on_white(drawing(600, 1200, 1))
    assert ffi.fit_within(rgb, 512).shape == (256, 512, 3)
    assert ffi.fit_within(rgb, 2000) is rgb
    assert ffi.prepare(rgb, 512, 192).shape == (256, 512, 3)
    assert ffi.prepare(rgb, 512, 300) is None  # the shorter side falls under the minimum
    assert ffi.prepare(ffi.composite_on_white(blank(600, 600)), 512, 192) is None


def test_pick_clipart_is_seeded_and_disjoint_by_series() -> None:
    images = {f"dir{i % 12}/d{i:02}.png": drawing(260 + i, 300, i) for i in range(36)}
    images.update({f"dir0/blank{i}.png": blank(300, 300) for i in range(10)})
    images["dir1/wide.png"] = drawing(260, 1500, 99)  # validation fit: 89 px high; training fit: 177 px high
    loaded: list[str] = []

    def load(path: str) -> np.ndarray:
        loaded.append(path)
        return ffi.composite_on_white(images[path])

    val, train = ffi.pick_clipart(list(images), load, 4, 10)
    assert len(val) == 4 and len(train) == 10
    val_paths, train_paths = [p for p, _ in val], [p for p, _ in train]
    val_folders = {p.split("/")[0] for p in val_paths}
    assert not val_folders & {p.split("/")[0] for p in train_paths}  # a validation drawing's series stays out
    assert not any("blank" in p or "wide" in p for p in val_paths + train_paths)
    assert all(min(img.shape[:2]) >= 192 and max(img.shape[:2]) <= 512 for _, img in val)
    assert len(loaded) < len(images)  # stops once both picks are full

    again = ffi.pick_clipart(list(reversed(images)), load, 4, 10)  # the order given does not matter
    assert [p for p, _ in again[0]] == val_paths and [p for p, _ in again[1]] == train_paths
    other = ffi.pick_clipart(list(images), load, 4, 10, seed=1)
    assert [p for p, _ in other[0]] + [p for p, _ in other[1]] != val_paths + train_paths
    everything = ffi.pick_clipart(list(images), load, 4, 100)[1]
    assert len(everything) == 36 - 3 * len(val_folders)  # all that pass outside the validation series


def test_png_size(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), drawing(210, 330, 0))
    (tmp_path / "b.png").write_bytes(b"not a png at all, but long enough")
    assert ffi.png_size(tmp_path / "a.png") == (330, 210)
    assert ffi.png_size(tmp_path / "b.png") is None


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fetch_free_images.py: error: "), err
    return err


def test_missing_debs_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert ffi.main(["--out", str(out), "--debs", str(tmp_path / "nope")]) == 2
    assert "--debs" in one_error_line(capsys) and not out.exists()


def test_missing_tools(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-get, no dpkg-deb
    assert ffi.main(["--out", str(tmp_path / "out")]) == 2
    err = one_error_line(capsys)
    assert "apt-get" in err and "dpkg-deb" in err and not (tmp_path / "out").exists()


def test_refuses_a_folder_with_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    (out / "structured_val").mkdir(parents=True)
    (out / "structured_val" / "mine.png").write_bytes(b"keep me")
    (tmp_path / "debs").mkdir()
    assert ffi.main(["--out", str(out), "--debs", str(tmp_path / "debs")]) == 2
    assert "--overwrite" in one_error_line(capsys)
    assert [p.relative_to(out).as_posix() for p in out.rglob("*")] == ["structured_val", "structured_val/mine.png"]
    assert (out / "structured_val" / "mine.png").read_bytes() == b"keep me"


DEP5 = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"


def build_deb(
    root: Path, package: str, version: str, license_text: str, files: dict[str, np.ndarray | bytes], debs: Path
) -> None:
    """A .deb holding ``files`` (path -> image, or raw bytes) and a debian/copyright stating ``license_text``
    (a whole machine-readable copyright file where it starts with DEP5)."""
    tree = root / package
    (tree / "DEBIAN").mkdir(parents=True)
    control = f"Package: {package}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: t\n"
    (tree / "DEBIAN" / "control").write_text(control)
    (tree / "usr/share/doc" / package).mkdir(parents=True)
    copyright_text = license_text if license_text.startswith(DEP5) else f"Files: *\n{license_text}\n"
    (tree / "usr/share/doc" / package / "copyright").write_text(copyright_text)
    for rel, img in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(img, bytes):
            (tree / rel).write_bytes(img)
        else:
            assert cv2.imwrite(str(tree / rel), img)
    command = ["dpkg-deb", "--root-owner-group", "-Znone", "-b", str(tree), str(debs / f"{package}_{version}_all.deb")]
    subprocess.run(command, check=True, capture_output=True)


@pytest.fixture(scope="module")
def fake_debs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """opencv-doc and openclipart-png .deb files of small synthetic images, in the packages' layout."""
    if not shutil.which("dpkg-deb"):
        pytest.skip("needs dpkg-deb (Debian's dpkg) to build the test packages")
    root = tmp_path_factory.mktemp("fake_packages")
    debs = root / "debs"
    debs.mkdir()
    opencv = {f"{ffi.OPENCV_ROOT}/{rel}": drawing(200 + i, 240, i)[:, :, :3] for i, rel in enumerate(ffi.OPENCV_FILES)}
    opencv[f"{ffi.OPENCV_ROOT}/data/box_in_scene.png"] = cv2.cvtColor(drawing(200, 220, 50), cv2.COLOR_BGRA2GRAY)
    build_deb(root, "opencv-doc", "4.6.0+dfsg-12", "License: Apache-2.0 AND BSD-3-Clause", opencv, debs)
    clipart = {f"{ffi.CLIPART_ROOT}/d{i}/x{i:02}.png": drawing(256 + 3 * i, 300, 100 + i) for i in range(16)}
    clipart[f"{ffi.CLIPART_ROOT}/d0/x00_blank.png"] = blank(300, 300)
    clipart[f"{ffi.CLIPART_ROOT}/d1/small.png"] = drawing(200, 300, 7)  # under 256 px: never a candidate
    build_deb(root, "openclipart-png", "1:0.18+dfsg-19", "creative commons Public Domain Dedication", clipart, debs)
    textures = {f"textures/tex_buildings/wall{i:02}.png": photo(300, 320, i) for i in range(6)}
    textures["textures/tex_buildings/wall00_nm.png"] = photo(300, 300, 90)  # a normal map: never a picture
    textures["textures/tex_streets/blurred.png"] = cv2.GaussianBlur(photo(300, 300, 91), (0, 0), 6)  # no detail
    textures["textures/tex_misc/other.png"] = photo(300, 300, 92)  # another folder: left out
    for copy in ("wall00_ne", "wall00_sw", "wall04_b"):  # one picture under several names: kept once
        textures[f"textures/tex_streets/{copy}.png"] = photo(300, 320, int(copy[5]))
    archive = root / "pk3"
    with zipfile.ZipFile(archive, "w") as z:
        for name, img in textures.items():
            z.writestr(name, cv2.imencode(".png", img)[1].tobytes())
    special = "Files: base/textures/tex_buildings/wall03.png\nCopyright: a\nLicense: CC-BY-3.0\n"
    ufoai_copyright = f"{DEP5}Files: *\nCopyright: t\nLicense: GPL-2+\n\n{special}"
    build_deb(root, content.TEXTURES, "2.5-2", ufoai_copyright, {content.TEXTURE_ARCHIVE: archive.read_bytes()}, debs)
    for i, package in enumerate(content.WALLPAPERS):
        files = {f"usr/share/backgrounds/{package}/p{j}.jpg": photo(400, 600, 200 + 10 * i + j) for j in range(2)}
        files[f"usr/share/wallpapers/W{i}/contents/images/600x400.png"] = photo(400, 600, 300 + i)
        files[f"usr/share/wallpapers/W{i}/contents/images/300x200.png"] = photo(200, 300, 310 + i)  # smaller: not taken
        files[f"usr/share/wallpapers/W{i}/contents/screenshot.png"] = photo(200, 300, 320 + i)
        wallpaper_copyright = (
            f"{DEP5}Files: *\nCopyright: t\nLicense: GPL-2+\n\nFiles: p1.jpg\nCopyright: b\nLicense: CC-BY-SA-4.0\n"
        )
        build_deb(root, package, "1.0-1", wallpaper_copyright, files, debs)
    for package in content.FONTS:  # no font files: text is drawn in Pillow's own font
        build_deb(root, package, "1.0-1", f"{DEP5}Files: *\nCopyright: t\nLicense: OFL-1.1\n", {}, debs)
    return debs


def photo(h: int, w: int, seed: int) -> np.ndarray:
    """A BGR picture with detail at every scale: noise over smooth blobs."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(base.astype(int) + rng.integers(-40, 41, (h, w, 3)), 0, 255).astype(np.uint8)


def test_whole_run_on_fake_packages(fake_debs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "free"
    quick = ["--procedural_count", "1", "--procedural_size", "192"]
    assert ffi.main(["--out", str(out), "--debs", str(fake_debs), "--train_count", "5", *quick]) == 0
    assert "structured_val/ 20, clipart_train/ 5, val/ " in capsys.readouterr().out
    val = sorted(p.name for p in (out / "structured_val").iterdir())
    train = sorted(p.name for p in (out / "clipart_train").iterdir())
    assert len(val) == 20 and len(train) == 5
    assert "opencv_building.png" in val and "skimage_brick.png" in val and "clipart_d0__x00_blank.png" not in val
    assert sum(n.startswith("clipart_") for n in val) == 8 and not set(val) & set(train)
    assert not any("small" in n or "blank" in n for n in val + train)
    for path in [*(out / "structured_val").iterdir(), *(out / "clipart_train").iterdir()]:
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 192, path.name
    sources = (out / "SOURCES.md").read_text()
    assert "| opencv-doc | 4.6.0+dfsg-12 |" in sources and "| openclipart-png | 1:0.18+dfsg-19 |" in sources
    assert f"--debs {fake_debs} --train_count 5 --procedural_count 1" in sources
    assert sources.count("| structured_val/") == 20 and sources.count("| clipart_train/") == 5
    assert "`usr/share/doc/opencv-doc/examples/text/scenetext04.jpg` | Apache-2.0 AND BSD-3-Clause" in sources

    # the content: textures (maps, blurred and other folders left out) and wallpapers, a share held out in val/
    textures = sorted(p.name for p in (out / "texture_train").iterdir())
    every_val = sorted(p.name for p in (out / "val").iterdir())
    held = [n for n in every_val if n.startswith("texture_")]
    pixels = {
        name: cv2.imread(str(out / folder / name)).tobytes()
        for folder, names in (("texture_train", textures), ("val", held))
        for name in names
    }
    assert len(set(pixels.values())) == 6  # the 6 sharp colour maps, each picture once in training
    assert len({pixels[n] for n in textures}) == len(textures)
    assert not {pixels[n] for n in textures} & {pixels[n] for n in held}  # no held-out picture trained on
    assert len(held) == 4  # VAL_MIN of the sharp colour maps
    assert not any("_nm" in n or "blurred" in n or "other" in n for n in textures + held)
    assert set(val) <= set(every_val)  # val/ holds structured_val's images too
    wallpapers = sorted(p.name for p in (out / "wallpaper_train").iterdir()) + [
        n for n in every_val if n.startswith("wallpaper_")
    ]
    assert len(wallpapers) == 4 * 3 and not any("screenshot" in n or "300x200" in n for n in wallpapers)
    assert (
        "textures/tex_buildings/wall03.png` | CC-BY-3.0" in sources and "textures/tex_buildings/wall01.png` | GPL-2+" in sources
    )
    assert "p1.jpg` | CC-BY-SA-4.0" in sources and "p0.jpg` | GPL-2+" in sources
    assert sorted(p.name for p in (out / "procedural_train").iterdir()) == sorted(
        f"proc_{kind}_0000.png" for kind in ("facade", "bricks", "tiles", "text", "screentone", "hatching", "deadleaves")
    )

    again = ["--out", str(out), "--debs", str(fake_debs), "--train_count", "2", *quick]
    assert ffi.main(again) == 2
    assert "--overwrite" in one_error_line(capsys) and len(list((out / "clipart_train").iterdir())) == 5
    assert ffi.main([*again, "--overwrite"]) == 0
    assert "3 stale PNGs removed" in capsys.readouterr().out
    kept = [p.name for p in (out / "clipart_train").iterdir()]
    assert len(kept) == 2 and set(kept) < set(train)  # the first two of the same seeded order
    assert sorted(p.name for p in (out / "structured_val").iterdir()) == val  # the same picks again
    assert sorted(p.name for p in (out / "val").iterdir()) == every_val  # the same held-out content


def test_without_copies_keeps_validation_first() -> None:
    def image(name: str, data: bytes) -> ffi.OutputImage:
        return ffi.OutputImage(name, data, (1, 1, 3), "pkg 1", name, "CC0")

    images = [
        image("clipart_train/a.png", b"A"),
        image("structured_val/b.png", b"B"),
        image("clipart_train/b_copy.png", b"B"),
        image("clipart_train/a_copy.png", b"A"),
        image("val/b.png", b"B"),
        image("texture_train/c.png", b"C"),
    ]
    kept = [i.name for i in ffi.without_copies(images)]
    assert kept == ["clipart_train/a.png", "structured_val/b.png", "val/b.png", "texture_train/c.png"]


def test_sharpness_and_the_held_out_share() -> None:
    rng = np.random.default_rng(0)
    smooth = cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (256, 256), interpolation=cv2.INTER_CUBIC)
    assert not content.is_sharp(smooth) and not content.is_sharp(np.full((256, 256, 3), 90, np.uint8))
    assert content.is_sharp(photo(256, 256, 1))
    assert content.held_out(100, 7) == content.held_out(100, 7) and len(content.held_out(100, 7)) == 5
    assert len(content.held_out(10, 7)) == content.VAL_MIN and content.held_out(0, 7) == set()
    assert content.fit_side(np.zeros((100, 3000, 3), np.uint8), 1280).shape == (43, 1280, 3)


def test_wrong_license_is_refused(fake_debs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    debs = tmp_path / "debs"
    debs.mkdir()
    shutil.copy(next(fake_debs.glob("opencv-doc_*.deb")), debs)
    build_deb(tmp_path, "openclipart-png", "1", "License: all rights reserved", {}, debs)
    assert ffi.main(["--out", str(tmp_path / "out"), "--debs", str(debs)]) == 2
    assert "Public Domain Dedication" in one_error_line(capsys) and not (tmp_path / "out").exists()
