"""Safe checkpoint reading: ``torch.load(weights_only=True)`` only, and one-line errors on mismatch."""

from __future__ import annotations

import copy
import errno
import hashlib
import io
import json
import math
import os
import pickletools
import re
import shutil
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from utils.errors import HarnessError, first_line
from utils.fileio import atomic_write
from utils.results import is_number

# keys under which common training codes nest the weights (self-describing checkpoints, BasicSR, ...)
NESTED_STATE_DICT_KEYS = ("state_dict", "params_ema", "params", "model")


OFFICIAL_RFDN_NAME = "team00_rfdn.pth"


def where_to_get(path: str | os.PathLike) -> str:
    """For a missing file: where to get it, when it is the official RFDN checkpoint (third-party, never
    committed); empty otherwise."""
    if Path(path).name != OFFICIAL_RFDN_NAME:
        return ""
    return (
        " (the official RFDN checkpoint: model_zoo/team00_rfdn.pth of the NTIRE Efficient-SR challenge repository; "
        "scripts/setup.sh links it from ../shared/model_zoo when that is there)"
    )


# Deeper nesting than this (a provenance is a few levels per stage: the submitted model's is 10) is refused when
# a checkpoint is read: pickling it again (torch.save) recurses once per level and fails past a few hundred.
MAX_NESTING = 200


def safe_load(path: str | os.PathLike) -> Any:
    """``torch.load(weights_only=True)`` on CPU, with one-line errors for a missing, corrupt or unsafe file: the one
    way this project reads a ``.pth`` file (checkpoints and training states alike). What loads is checked too:
    no meta tensor (a shape without values) or sparse tensor, and nothing nested deeper than MAX_NESTING levels."""
    if os.path.isdir(path):
        raise HarnessError(f"{path}: is a folder; expected a checkpoint file")
    if not os.path.isfile(path):
        raise HarnessError(f"{path}: checkpoint file not found{where_to_get(path)}")
    try:
        data = Path(path).read_bytes() if os.path.getsize(path) <= _KEPT_FILE_BYTES else None
    except OSError as err:  # unreadable (permissions, an I/O error) or gone since the check above
        raise HarnessError(f"{path}: {_load_failure(err, path)}") from None
    if data is None or len(data) > _KEPT_FILE_BYTES:
        return _load_checked(path if data is None else io.BytesIO(data), path)
    key = hashlib.sha256(data).digest()
    if key not in _loaded:
        _loaded[key] = (_load_checked(io.BytesIO(data), path), len(data))
        while sum(size for _, size in _loaded.values()) > _CACHE_BYTES or len(_loaded) > _CACHE_FILES:
            _loaded.popitem(last=False)  # never the file just read: it is under a quarter of the budget
    _loaded.move_to_end(key)
    return _fresh_copy(_loaded[key][0], {})


# A command checks the files it reads before any work and reads them again to work (a pipeline reads each stage's
# output and training state several times): what a file held is kept by the sha256 of its bytes, so a file is
# unpickled once per contents and a file written since is read anew. Every caller gets its own copy. The files of
# one pipeline run (its stage outputs and training states) fit; a file over a quarter of the budget is not kept.
_CACHE_FILES = 32
_CACHE_BYTES = 256 * 2**20
_KEPT_FILE_BYTES = _CACHE_BYTES // 4
_loaded: OrderedDict[bytes, tuple[Any, int]] = OrderedDict()


def _fresh_copy(obj: Any, memo: dict[Any, Any]) -> Any:
    """A copy of what ``torch.load`` gave that shares nothing mutable with it (an optimizer resumed from a state
    updates its moments in place): containers rebuilt with their attributes (a state dict's ``_metadata``), a
    container held twice staying one; tensors copied with their storage, so views of one storage stay views of one
    copy and an expanded tensor stays small; strings, numbers and other immutable values shared."""
    if id(obj) in memo:
        return memo[id(obj)]
    if obj is None or isinstance(obj, (str, bytes, int, float, complex, torch.Size, torch.dtype, torch.device)):
        return obj
    if isinstance(obj, torch.Tensor):
        new: Any = _tensor_copy(obj, memo)
    elif isinstance(obj, dict):  # what loaded holds no container inside itself (check_contents refuses it)
        new = obj.copy()  # the same class (OrderedDict, Counter, defaultdict with its factory)
        for key, value in new.items():
            new[key] = _fresh_copy(value, memo)
    elif type(obj) is list:
        new = [_fresh_copy(value, memo) for value in obj]
    elif type(obj) is tuple:
        new = tuple(_fresh_copy(value, memo) for value in obj)
    else:
        new = copy.deepcopy(obj)
    attributes = getattr(obj, "__dict__", None)
    if attributes and not isinstance(obj, torch.Tensor):
        new.__dict__.update(_fresh_copy(dict(attributes), memo))
    memo[id(obj)] = new
    return new


def _tensor_copy(tensor: torch.Tensor, memo: dict[Any, Any]) -> torch.Tensor:
    if tensor.layout != torch.strided or tensor.is_quantized:
        copied = tensor.detach().clone()
    else:
        storage = tensor.untyped_storage()
        key = ("storage", storage.data_ptr(), storage.nbytes())  # apart from ids: a storage pointer is not an object id
        whole = tensor.storage_offset() == 0 and storage.nbytes() == tensor.numel() * tensor.element_size()
        if key not in memo and whole and tensor.is_contiguous():  # the usual weight: a plain clone is its copy
            copied = tensor.detach().clone()
            memo[key] = copied.untyped_storage()
        else:
            if key not in memo:
                memo[key] = storage.clone()
            copied = torch.empty(0, dtype=tensor.dtype).set_(memo[key], tensor.storage_offset(), tensor.size(), tensor.stride())
    if isinstance(tensor, nn.Parameter):
        return nn.Parameter(copied, requires_grad=tensor.requires_grad)
    return copied.requires_grad_(tensor.requires_grad)


def _load_checked(source: str | os.PathLike | io.BytesIO, path: str | os.PathLike) -> Any:
    try:
        with warnings.catch_warnings():  # torch warns of a pickle protocol it may not read: what it refuses is said below
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or unsafe files
        raise HarnessError(f"{path}: {_load_failure(err, path)}") from None
    check_contents(obj, str(path))
    return obj


# torch's weights-only unpickler names what it blocked in these sentences (torch 2.4 to 2.8)
_BLOCKED = (
    (r"Trying to load unsupported GLOBAL (\S+) whose module (\S+) is blocked", "its module {1} is blocked"),
    (r"Unsupported global: GLOBAL (\S+) was not an allowed global", "not an allowed global"),
    (r"Trying to call reduce for unrecognized function (.+?)(?:\n|$)", "a call weights-only loading does not make"),
    (
        r"Can only create new object for nn.Parameter or classes allowlisted via `add_safe_globals` but got (\S+)",
        "an object weights-only loading does not create",
    ),
    (
        r"Can only build Tensor, Parameter, OrderedDict or types allowlisted via `add_safe_globals`, but got (\S+)",
        "an object weights-only loading does not build",
    ),
)
_STRING_OPS = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}


def _load_failure(err: Exception, path: str | os.PathLike) -> str:
    """Why torch.load refused a file, without torch's advice to load it unsafely: a pickle that would run code
    (what torch blocked, named) is said to be unsafe; anything else is unreadable."""
    text = str(err)
    for pattern, why in _BLOCKED:
        blocked = re.search(pattern, text)
        if blocked:
            what = blocked.group(1).strip().strip("<>")
            return _unsafe(f"it holds a pickled {what} ({why.format(*blocked.groups())}, torch says)")
    operand = re.search(r"Unsupported operand (\d+)", text)
    if operand:
        code = int(operand.group(1))
        imports = _pickled_globals(_first_pickles(path))
        if imports is not None:  # a well-formed pickle, with an instruction weights-only loading refuses
            name = pickletools.code2op.get(chr(code)) if code < 256 else None
            instruction = (
                f"the pickle instruction {name.name if name else code} ({code}), which weights-only loading does not run"
            )
            if imports:
                return _unsafe(f"it is a pickle with {instruction}, importing {', '.join(dict.fromkeys(imports))}")
            return f"not a loadable weights-only checkpoint (a pickle with {instruction}; save it with torch.save)"
    detail = text.split("WeightsUnpickler error:", 1)[-1].strip() or type(err).__name__
    first_sentence = first_line(Exception(detail)).split(". ")[0]
    return f"not a loadable weights-only checkpoint (unreadable: corrupt, truncated or not a PyTorch file: {first_sentence})"


def _unsafe(reason: str) -> str:
    return (
        f"unsafe checkpoint, refused: {reason}; loading it as a full pickle could run code, so it is not loaded and "
        "nothing in it ran (expected a state dict or a checkpoint of this project, saved with torch.save)"
    )


def _first_pickles(path: str | os.PathLike, limit: int = 1 << 26) -> bytes:
    """The pickle bytes torch.load reads: ``data.pkl`` of a zip checkpoint, else the file's start."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
                return archive.read(names[0])[:limit] if names else b""
        with open(path, "rb") as file:
            return file.read(limit)
    except (OSError, zipfile.BadZipFile, KeyError, RuntimeError):
        return b""


def _pickled_globals(data: bytes) -> list[str] | None:
    """The globals (``module.name``) that the pickles at the start of ``data`` import, read by ``pickletools``
    (which runs nothing); None where ``data`` does not start with a whole, well-formed pickle (corrupt)."""
    stream, found, whole = io.BytesIO(data), [], False
    while stream.tell() < len(data):
        pushed: list[Any] = []
        memo: dict[int, Any] = {}
        try:
            for op, arg, _ in pickletools.genops(stream):
                if op.name in ("GLOBAL", "INST"):
                    found.append(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL":
                    found.append(".".join(str(v) for v in pushed[-2:]))
                if op.name == "MEMOIZE":
                    memo[len(memo)] = pushed[-1] if pushed else None
                elif op.name in _PUT_OPS:
                    memo[arg] = pushed[-1] if pushed else None
                elif op.name in _GET_OPS:
                    pushed.append(memo.get(arg))
                else:
                    pushed.append(arg if op.name in _STRING_OPS else None)
        except Exception:  # not (or no longer) a pickle: the legacy format's raw storage bytes, or corruption
            break
        whole = True
    return found if whole else None


def check_contents(obj: Any, source: str) -> None:
    """Refuse, naming ``source`` and where in it, what loads but cannot be used: a meta tensor (a shape without
    values, as a model built on the meta device saves), a sparse tensor, or containers nested deeper than
    MAX_NESTING levels (also a container that holds itself). Walked without recursion; each container is walked
    again only when reached deeper than before, so shared containers cost no more than their depth."""
    stack: list[tuple[Any, int, tuple[str, ...]]] = [(obj, 0, ())]
    deepest: dict[int, int] = {}
    while stack:
        value, depth, where = stack.pop()
        if isinstance(value, torch.Tensor):
            name = ".".join(where) or "the file's object"
            if value.is_meta:
                raise HarnessError(
                    f"{source}: tensor {name} is a meta tensor (a shape without values, as a model built on the meta "
                    "device saves); expected tensors holding their values"
                )
            if value.layout != torch.strided:
                raise HarnessError(f"{source}: tensor {name} is {value.layout} (sparse); expected dense tensors")
            continue
        if isinstance(value, Mapping):
            children = [(str(key), child) for key, child in value.items()]
        elif isinstance(value, list | tuple | set | frozenset):
            children = [(f"[{index}]", child) for index, child in enumerate(value)]
        else:
            continue
        if depth >= MAX_NESTING:
            shown = ".".join(where[:3]) + (f"... ({depth} levels)" if len(where) > 3 else "")
            raise HarnessError(
                f"{source}: nested deeper than {MAX_NESTING} levels (at {shown}); expected at most {MAX_NESTING} "
                "(a checkpoint's provenance adds a few per stage)"
            )
        if deepest.get(id(value), -1) >= depth:
            continue
        deepest[id(value)] = depth
        trail = where if len(where) >= 8 else None
        stack.extend((child, depth + 1, trail or (*where, key)) for key, child in reversed(children))  # first on top


def _state_dict_of(obj: Any, path: str) -> dict[str, torch.Tensor]:
    """The state dict in a loaded file: plain, or nested under a known key; DataParallel prefixes removed."""
    if isinstance(obj, Mapping):
        for key in NESTED_STATE_DICT_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise HarnessError(f"{path}: holds no state dict (expected a mapping of parameter names to tensors)")
    state = dict(obj)
    if all(k.startswith("module.") for k in state):  # saved from DataParallel / DDP
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def describe_mismatch(model: nn.Module, state: Mapping[str, torch.Tensor]) -> str | None:
    """One line naming what keeps ``state`` from loading into ``model`` with strict=True; None if it fits."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if not (missing or unexpected or wrong_shape):
        return None
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if wrong_shape:
        k = wrong_shape[0]
        parts.append(
            f"{len(wrong_shape)} with another shape (e.g. {k}: checkpoint {tuple(state[k].shape)} "
            f"vs model {tuple(expected[k].shape)})"
        )
    return "; ".join(parts)


def check_finite(state: Mapping[str, torch.Tensor], source: str) -> None:
    """Refuse weights holding NaN or infinity (a diverged training's), naming ``source`` and the first such tensor:
    they give no image, and a training started from them diverges at once, which would be blamed on its --lr.
    Checked in one pass per dtype; only weights that fail it are searched tensor by tensor for the message."""
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for tensor in state.values():
        if tensor.is_floating_point() or tensor.is_complex():
            by_dtype.setdefault(tensor.dtype, []).append(tensor.detach().reshape(-1))
    if all(bool(torch.isfinite(torch.cat(tensors)).all()) for tensors in by_dtype.values()):
        return
    for name, tensor in state.items():
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise HarnessError(
                    f"{source}: weights hold values that are not finite ({bad} of {tensor.numel()} in {name} are NaN or "
                    "infinity); expected a checkpoint of finite weights (from a training that diverged?)"
                )


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> nn.Module:
    """Load ``state`` into ``model`` (strict), or raise one line: ``what``, then what does not fit."""
    mismatch = describe_mismatch(model, state)
    if mismatch:
        raise HarnessError(f"{what}: {mismatch}")
    model.load_state_dict(state, strict=True)
    return model


# --- self-describing model checkpoints ---------------------------------------------------------------------

CHECKPOINT_FORMAT = "prfdn-checkpoint/1"
TRAINING_STATE_FORMAT = "prfdn-train-state/1"  # train_prfdn.py's resumable state (OUT.state.pth)


def check_training_state(state: Any, source: str) -> dict[str, Any]:
    """``state`` if it is a training state written by train_prfdn.py, else a one-line HarnessError."""
    if not isinstance(state, dict) or state.get("format") != TRAINING_STATE_FORMAT:
        raise HarnessError(f"{source}: not a training state ({TRAINING_STATE_FORMAT}) written by train_prfdn.py")
    return state


@dataclass
class ModelCheckpoint:
    """A state dict plus what is needed to rebuild its module: architecture, per-layer widths, scale, range."""

    arch: str
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    scale: int = 4
    data_range: float = 255.0
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "arch": self.arch,
            "config": self.config,
            "scale": self.scale,
            "data_range": self.data_range,
            "provenance": self.provenance,
            "state_dict": {k: v.detach().cpu().contiguous() for k, v in self.state_dict.items()},
        }


# Free bytes below which a failed write is taken for a full disk (torch's writer does not say why it failed).
FULL_DISK_BYTES = 64 << 20


def save_torch_file(path: str | os.PathLike, payload: Any) -> None:
    """``torch.save(payload)`` to ``path`` atomically (``atomic_write``), through a Python file flushed to disk: a
    full disk is then one ``OSError`` naming ``path`` ("No space left on device"), and whatever ``path`` held
    before stays whole. Where torch's own writer fails instead (a RuntimeError such as "unexpected pos" or
    "iostream error"), the error says whether the disk is full."""

    def write(tmp: str) -> None:
        try:
            with open(tmp, "wb") as f:
                torch.save(payload, f)
                f.flush()
                os.fsync(f.fileno())
        except RuntimeError as err:
            raise torch_write_error(tmp, err) from None

    atomic_write(path, write)


def torch_write_error(tmp: str | os.PathLike, err: RuntimeError) -> OSError:
    """The OSError for torch's failed write of ``tmp``: ENOSPC where the disk is (nearly) full, else EIO with
    torch's first line."""
    try:
        free = shutil.disk_usage(Path(tmp).parent).free
    except OSError:
        free = None
    if free is not None and free < FULL_DISK_BYTES:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return OSError(errno.EIO, f"the write failed ({first_line(err)})")


def save_model_checkpoint(path: str | os.PathLike, checkpoint: ModelCheckpoint) -> None:
    """Write ``checkpoint`` atomically; the file loads with ``torch.load(weights_only=True)``."""
    save_torch_file(path, checkpoint.to_dict())


def weights_beside_state(path: str | os.PathLike) -> tuple[Path, Path]:
    """(best, last) weights that train_prfdn.py writes beside its training state ``OUT.state.pth``."""
    path = Path(path)
    marker = f".state{path.suffix}"
    stem = path.name[: -len(marker)] if path.name.endswith(marker) else path.stem
    return path.with_name(f"{stem}{path.suffix}"), path.with_name(f"{stem}_last{path.suffix}")


def _training_state_error(path: str, state_format: str) -> HarnessError:
    best, last = weights_beside_state(path)
    weights = f"{best} (best by validation) or {last} (last)"
    if not (best.is_file() or last.is_file()):
        weights += ", written beside it by the same run (not found here)"
    return HarnessError(
        f"{path}: is a training state ({state_format}, for train_prfdn.py --resume), not model weights; evaluate {weights}"
    )


def _header_scale(value: Any, path: str) -> int:
    """The checkpoint's ``scale``: a positive whole number (4.0 reads as 4; 4.7 is refused, not cut to 4)."""
    if not (is_number(value) and math.isfinite(value) and value == int(value) and value >= 1):
        raise HarnessError(f"{path}: key 'scale' is {value!r}; expected a positive whole number (4 for x4)")
    return int(value)


def _header_data_range(value: Any, path: str) -> float:
    """The checkpoint's ``data_range``: a finite positive number (255.0, or 1.0 for inputs in [0, 1])."""
    if not (is_number(value) and math.isfinite(value) and value > 0):
        raise HarnessError(f"{path}: key 'data_range' is {value!r}; expected a finite positive number (255.0 or 1.0)")
    return float(value)


def read_model_checkpoint(path: str | os.PathLike) -> ModelCheckpoint:
    """Read a self-describing checkpoint; a plain state dict is taken as the official RFDN's. A training state
    of train_prfdn.py is refused, naming the weights written beside it; so is a header whose ``scale`` is not a
    positive whole number (or differs from its config's ``scale``) or whose ``data_range`` is not a finite
    positive number, naming the key, and a weight that is NaN or infinite, naming the tensor."""
    path = str(path)
    obj = safe_load(path)
    file_format = obj.get("format") if isinstance(obj, Mapping) else None
    if isinstance(file_format, str) and file_format != CHECKPOINT_FORMAT:
        if file_format == TRAINING_STATE_FORMAT:
            raise _training_state_error(path, TRAINING_STATE_FORMAT)
        raise HarnessError(f"{path}: unknown checkpoint format {file_format!r} (expected {CHECKPOINT_FORMAT} or a state dict)")
    if isinstance(obj, Mapping) and obj.get("format") == CHECKPOINT_FORMAT:
        try:
            checkpoint = ModelCheckpoint(
                arch=str(obj["arch"]),
                config=dict(obj["config"]),
                state_dict=dict(obj["state_dict"]),
                scale=_header_scale(obj["scale"], path),
                data_range=_header_data_range(obj["data_range"], path),
                provenance=dict(obj.get("provenance", {})),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise HarnessError(f"{path}: malformed {CHECKPOINT_FORMAT} checkpoint ({err!r})") from None
        not_tensors = [name for name, value in checkpoint.state_dict.items() if not isinstance(value, torch.Tensor)]
        if not_tensors:
            raise HarnessError(f"{path}: state_dict entry {not_tensors[0]!r} is not a tensor; expected tensors only")
        config_scale = checkpoint.config.get("scale", checkpoint.scale)
        if config_scale != checkpoint.scale:
            raise HarnessError(
                f"{path}: key 'scale' is {checkpoint.scale} but its config's 'scale' is {config_scale!r}; expected the same"
            )
        check_finite(checkpoint.state_dict, path)
        return checkpoint
    checkpoint = ModelCheckpoint(arch="rfdn", config={}, state_dict=_state_dict_of(obj, path))
    check_finite(checkpoint.state_dict, path)
    return checkpoint


def check_scale(checkpoint: ModelCheckpoint, scale: int, source: str) -> ModelCheckpoint:
    """``checkpoint`` if its model upscales by ``scale``; else one line naming ``source``."""
    if checkpoint.scale != scale:
        raise HarnessError(f"{source}: is an x{checkpoint.scale} model; expected x{scale} (the scale evaluated here)")
    return checkpoint


def weights_sha256(checkpoint: ModelCheckpoint) -> str:
    """A digest of what ``checkpoint`` computes (architecture, widths, scale, range, every tensor's name, dtype,
    shape and bytes), apart from its file: two writes of the same weights share it, whatever their provenance."""
    digest = hashlib.sha256()
    header = {"arch": checkpoint.arch, "config": checkpoint.config, "scale": checkpoint.scale, "range": checkpoint.data_range}
    digest.update(json.dumps(header, sort_keys=True, default=str).encode())
    for name in sorted(checkpoint.state_dict):
        tensor = checkpoint.state_dict[name].detach().cpu().contiguous()
        digest.update(f"\n{name}:{tensor.dtype}:{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()
