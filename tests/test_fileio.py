"""Safe file output: modes, links, stale temp files, locks and the checks made before any work."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from utils.errors import HarnessError
from utils.fileio import (
    atomic_write,
    atomic_write_text,
    check_distinct,
    check_output_file,
    folder_lock,
    remove_stale_temp_files,
)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_file_gets_the_umask_mode_and_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "new.json", "{}")
        assert mode_of(tmp_path / "new.json") == 0o644
        os.umask(0o007)
        atomic_write_text(tmp_path / "group.json", "{}")
        assert mode_of(tmp_path / "group.json") == 0o660
        (tmp_path / "new.json").chmod(0o640)
        atomic_write_text(tmp_path / "new.json", "[]")
        assert mode_of(tmp_path / "new.json") == 0o640 and (tmp_path / "new.json").read_text() == "[]"
    finally:
        os.umask(old)


def test_write_through_a_symlink_lands_on_its_target_and_keeps_the_link(tmp_path: Path) -> None:
    target = tmp_path / "store" / "results.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "results.json"
    link.symlink_to(target)
    atomic_write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    dangling = tmp_path / "later.json"
    dangling.symlink_to(tmp_path / "store" / "later_target.json")
    atomic_write_text(dangling, "x")
    assert dangling.is_symlink() and (tmp_path / "store" / "later_target.json").read_text() == "x"


def test_stale_temp_file_of_a_dead_writer_is_removed_and_a_live_one_kept(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".model.pth.{dead_pid}.abcd1234.tmp.pth"
    live = tmp_path / f".model.pth.{os.getpid()}.abcd1234.tmp.pth"
    other = tmp_path / ".other.pth.1.abcd.tmp.pth"
    for p in (stale, live, other):
        p.write_bytes(b"x")
    atomic_write(tmp_path / "model.pth", lambda tmp: Path(tmp).write_bytes(b"weights"))
    assert not stale.exists() and live.exists() and other.exists()
    assert remove_stale_temp_files(tmp_path / "model.pth") == []


def test_write_error_names_the_users_path_not_the_temp_file(tmp_path: Path) -> None:
    def failing(tmp: str) -> None:
        raise OSError(28, "No space left on device", tmp)

    with pytest.raises(OSError, match=r"cannot write .*out\.json: No space left") as info:
        atomic_write(tmp_path / "out.json", failing)
    assert ".tmp" not in str(info.value)


def test_check_output_file_refuses_what_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(HarnessError, match=r"--json .*a_file/out\.json: .*a_file is not a folder"):
        check_output_file(tmp_path / "a_file" / "out.json", "--json")
    with pytest.raises(HarnessError, match="is a folder"):
        check_output_file(tmp_path, "--json")
    loop = tmp_path / "loop.json"
    loop.symlink_to(loop)
    with pytest.raises(HarnessError, match="symlink loop"):
        check_output_file(loop, "--json")
    assert check_output_file(tmp_path / "new" / "deeper" / "out.json", "--json") == tmp_path / "new" / "deeper" / "out.json"
    assert not (tmp_path / "new").exists()  # nothing created
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "loop.json"]  # no probe left


@pytest.mark.parametrize("name", ["a" * 250 + ".png", "é" * 125 + ".png"])  # 254 and 254 bytes (UTF-8)
def test_a_long_name_gets_a_temp_file_whose_name_fits(tmp_path: Path, name: str) -> None:
    """A 250-byte file name is writable, but the temp name beside it (name + pid + random + .tmp) once passed
    the file system's 255 bytes, and a run failed at its first write, after all the work."""
    temp_names: list[str] = []
    atomic_write(tmp_path / name, lambda tmp: (temp_names.append(Path(tmp).name), Path(tmp).write_bytes(b"x")))
    assert (tmp_path / name).read_bytes() == b"x" and len(os.fsencode(temp_names[0])) <= 255
    assert temp_names[0].endswith(".tmp.png")  # the suffix kept: writers pick the format from it
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / temp_names[0].replace(f".{os.getpid()}.", f".{int(dead.stdout)}.")
    stale.write_bytes(b"left by a killed writer")
    assert remove_stale_temp_files(tmp_path / name) == [stale]


def test_a_name_longer_than_the_file_system_takes_is_refused_before_work(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match=r"--save_dir .*: the name a{32}\.\.\. is 260 bytes; a file system takes at most 255"):
        check_output_file(tmp_path / ("a" * 256 + ".png"), "--save_dir")
    with pytest.raises(HarnessError, match=r"is 300 bytes"):
        check_output_file(tmp_path / ("é" * 150) / "out.json", "--json")


def test_check_distinct_sees_links_and_relative_spellings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src.pth"
    src.write_bytes(b"x")
    (tmp_path / "alias.pth").symlink_to(src)
    os.link(src, tmp_path / "hard.pth")
    monkeypatch.chdir(tmp_path)
    for out in ("src.pth", "./sub/../src.pth", "alias.pth", "hard.pth"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(HarnessError, match="is the same file as SRC"):
            check_distinct({"DST": out}, {"SRC": src})
    with pytest.raises(HarnessError, match="same file as --b"):
        check_distinct({"--a": "x.txt", "--b": "./x.txt"}, {})
    check_distinct({"DST": "other.pth", "--log": None}, {"SRC": src, "--teacher": None})


def test_folder_lock_serializes_read_merge_write(tmp_path: Path) -> None:
    counter = tmp_path / "n.txt"
    counter.write_text("0")

    def bump() -> None:
        with folder_lock(tmp_path):
            n = int(counter.read_text())
            time.sleep(0.02)  # a window in which an unlocked writer would lose an update
            atomic_write_text(counter, str(n + 1))

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.read_text() == "8"


def test_exclusive_run_refuses_a_second_run_and_frees_the_path_when_done(tmp_path: Path) -> None:
    from utils.fileio import exclusive_run

    out = tmp_path / "out.state.pth"
    with exclusive_run(out, "OUT"):
        first_claim_held = True
        with pytest.raises(HarnessError, match=r"OUT .*out\.state\.pth: another run is using it now"), exclusive_run(out, "OUT"):
            pass
    assert first_claim_held
    with exclusive_run(out, "OUT"):  # released at the end of the block
        pass
    assert list(tmp_path.iterdir()) == []  # no lock file left behind
