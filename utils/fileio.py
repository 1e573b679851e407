"""Safe file output: atomic writes, output paths checked before any work, inputs never overwritten.

Every file this project writes goes through :func:`atomic_write`: the content goes to a temp file beside the
target, then one rename puts it in place, so a crash or Ctrl-C never leaves a half-written file. The rename
lands on what a symlink points to (the link stays a link), and the file gets the mode a plain ``open(path,
"w")`` would give: an existing file keeps its mode, a new one gets ``0o666`` less the umask.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import signal
import stat
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from utils.errors import HarnessError

try:  # POSIX advisory locks; elsewhere writers of one results file are not serialized
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

TEMP_MARK = ".tmp"  # temp files are named .<name>.<pid>.<random>.tmp<suffix>
NAME_MAX = 255  # bytes in one file name, on Linux's and macOS's file systems
# what a temp file's name adds to <name>: "." + "." + pid (at most 10 digits) + "." + 8 hex digits + TEMP_MARK
_TEMP_OVERHEAD = 1 + 1 + 10 + 1 + 8 + len(TEMP_MARK)


def _name_bytes(name: str) -> int:
    return len(os.fsencode(name))


def _temp_stem(target: Path) -> str:
    """The <name> in a temp file's name: the target's name, or (where the temp name would pass NAME_MAX) its
    start and a digest of the whole name, so that the temp name fits where the target's fits."""
    room = NAME_MAX - _TEMP_OVERHEAD - _name_bytes(target.suffix)
    if _name_bytes(target.name) <= room:
        return target.name
    digest = hashlib.sha256(os.fsencode(target.name)).hexdigest()[:12]
    start = os.fsencode(target.name)[: room - len(digest) - 1].decode("utf-8", errors="ignore")
    return f"{start}~{digest}"


def _temp_pattern(target: Path) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(_temp_stem(target))}\.(\d+)\.[0-9a-f]+{re.escape(TEMP_MARK + target.suffix)}$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temp_files(target: str | os.PathLike) -> list[Path]:
    """Delete temp files of ``target`` left by a writer that died mid-write (kill -9); returns them."""
    target = Path(target)
    pattern, removed = _temp_pattern(target), []
    if not target.parent.is_dir():
        return removed
    for entry in target.parent.iterdir():
        match = pattern.match(entry.name)
        if match and not _pid_alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                entry.unlink()
                removed.append(entry)
    return removed


def current_umask() -> int:
    """The process's umask (read without changing it where /proc tells it)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_target(path: str | os.PathLike) -> Path:
    """Where a write to ``path`` lands: the end of its chain of symlinks (dangling or not), else ``path``."""
    path = Path(path)
    seen = set()
    while path.is_symlink():
        if path in seen:
            raise HarnessError(f"{path}: symlink loop; expected a file or a link to one")
        seen.add(path)
        link = Path(os.readlink(path))
        path = link if link.is_absolute() else path.parent / link
    return path


def _plain_write_mode(target: Path) -> int:
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a temp file next to ``path``'s target, then rename it over the target.

    The temp file keeps the target's suffix, so writers that pick the format from the name (OpenCV, savefig)
    still work. An OSError names ``path``, never the temp file.
    """
    target = write_target(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(target)
        mode = _plain_write_mode(target)
        tmp = target.parent / f".{_temp_stem(target)}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_MARK}{target.suffix}"
        try:
            write(str(tmp))
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
    except OSError as err:
        raise OSError(err.errno, f"cannot write {path}: {err.strerror or err}") from None


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- checks made before any work ---------------------------------------------------------------------------


def _nearest_existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _link_loop_on_the_way(folder: Path) -> Path | None:
    """The first folder on the way to ``folder`` (itself included) that is a loop of symbolic links, if any."""
    for step in reversed([folder, *folder.parents]):
        try:
            os.stat(step)
        except OSError as err:
            if err.errno == errno.ELOOP:
                return step
            return None
    return None


def _probe_writable(folder: Path) -> str | None:
    """Why no file can be created in ``folder`` (None if one can): a real try, as permission bits lie to root."""
    probe = folder / f".{secrets.token_hex(6)}.probe{TEMP_MARK}"
    try:
        with open(probe, "x"):
            pass
    except OSError as err:
        return err.strerror or str(err)
    with contextlib.suppress(OSError):
        probe.unlink()
    return None


def check_name_lengths(path: str | os.PathLike, label: str) -> None:
    """Refuse a path with a name the file system cannot hold (over NAME_MAX bytes), before it is looked up."""
    for name in Path(path).parts:
        if _name_bytes(name) > NAME_MAX:
            raise HarnessError(
                f"{label}: the name {name[:32]}... is {_name_bytes(name)} bytes; a file system takes at most {NAME_MAX} "
                "per name (shorten it)"
            )


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """Refuse, with one line naming ``flag`` and ``path``, an output file that could not be written.

    Checked: no name over NAME_MAX bytes, not a folder, no symlink loop, its folder is a folder (or can be made)
    and a file can be created there. Nothing is created. Returns the path the write will land on.
    """
    path = Path(path)
    label = f"{flag} {path}" if flag else str(path)
    if str(path) in ("", "."):
        raise HarnessError(f"{flag}: empty path; expected a file name")
    check_name_lengths(path, label)
    target = write_target(path)
    if target.is_dir():
        raise HarnessError(f"{label}: is a folder; expected a file name")
    if target.exists() and not target.is_file():
        raise HarnessError(f"{label}: is not a regular file")
    loop = _link_loop_on_the_way(target.parent)
    if loop is not None:
        raise HarnessError(f"{label}: {loop} is a loop of symbolic links; expected a folder")
    existing = _nearest_existing(target.parent)
    if not existing.is_dir():
        raise HarnessError(f"{label}: {existing} is not a folder")
    reason = _probe_writable(existing)
    if reason:
        raise HarnessError(f"{label}: cannot write in {existing} ({reason})")
    return target


def check_new_output(path: str | os.PathLike, flag: str, overwrite: bool) -> Path:
    """:func:`check_output_file`, and refuse a file already there unless ``overwrite`` (the CLI's ``--overwrite``):
    nothing a user has is replaced without asking. Returns the path the write will land on."""
    target = check_output_file(path, flag)
    if not overwrite and target.exists():
        label = f"{flag} {path}" if flag else str(path)
        raise HarnessError(f"{label}: exists; give --overwrite to replace it, or another path")
    return target


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file (through links, hard links, ``..``), existing or to be written."""
    a, b = Path(a), Path(b)
    with contextlib.suppress(OSError):
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    return os.path.realpath(write_target(a)) == os.path.realpath(write_target(b))  # realpath: no error on a loop


def check_distinct(outputs: Mapping[str, str | os.PathLike | None], inputs: Mapping[str, str | os.PathLike | None]) -> None:
    """Refuse an output that is one of the inputs or another output (labels are flags or roles, e.g. 'OUT')."""
    outs = [(label, p) for label, p in outputs.items() if p is not None]
    ins = [(label, p) for label, p in inputs.items() if p is not None]
    for i, (out_label, out) in enumerate(outs):
        for in_label, src in ins:
            if same_file(out, src):
                raise HarnessError(
                    f"{out_label} {out}: is the same file as {in_label} {src}, which is read, never replaced; "
                    "give another output path"
                )
        for other_label, other in outs[i + 1 :]:
            if same_file(out, other):
                raise HarnessError(f"{out_label} {out}: is the same file as {other_label} {other}; give two different paths")


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``folder`` (for read-merge-write of a file in it by several runs).

    The folder itself is locked, not the file: the file is replaced by a rename, so a lock on it would be lost.
    """
    folder = Path(folder)
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # Python retries it when a signal interrupts the wait (PEP 475)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def exclusive_run(path: str | os.PathLike, label: str) -> Iterator[None]:
    """Refuse (one line) to start while another process runs on ``path``; hold that claim until the block ends.

    The claim is an advisory lock on a hidden file beside ``path`` (``.<name>.lock``), removed at the end; the
    system releases the lock when the process ends, however it ends, so a killed run never blocks the next one
    (its file stays, and the next run takes it over).
    """
    target = write_target(path)
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / f".{target.name}.lock"
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise HarnessError(f"{label} {path}: another run is using it now; wait for it to end") from None
        with contextlib.suppress(FileNotFoundError):
            if os.fstat(fd).st_ino == os.stat(lock_path).st_ino:
                break  # the claim is on the file that is there (not on one its last holder just removed)
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock_path.unlink()  # removed while still held, so the next run claims a fresh file
        os.close(fd)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) until the block ends, then raise KeyboardInterrupt: files written together (a
    report's JSON, plot and tables) are all written, or none of them, never a mix of new and old. Only in the
    main thread (where Python delivers signals); elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt
