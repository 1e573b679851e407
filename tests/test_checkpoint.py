"""Reading a checkpoint: what loads is checked (no meta or sparse tensor, a bounded nesting), and a pickle that
would run code is refused as unsafe, naming what torch blocked; a corrupt file is called corrupt."""

from __future__ import annotations

import builtins
import os
import pickle
import time
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn

from utils.checkpoint import (
    CHECKPOINT_FORMAT,
    MAX_NESTING,
    ModelCheckpoint,
    read_model_checkpoint,
    safe_load,
    save_model_checkpoint,
)
from utils.errors import HarnessError, first_line


class Calls:
    """Pickled, it calls ``function(argument)`` when loaded unsafely (never here: weights-only loading refuses it)."""

    def __init__(self, function: Any, argument: str) -> None:
        self.function, self.argument = function, argument

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return self.function, (self.argument,)


UNSAFE = "unsafe checkpoint, refused: "
NOTHING_RAN = "so it is not loaded and nothing in it ran"


@pytest.mark.parametrize(
    ("write", "reason"),
    [
        (
            lambda path: torch.save({"a": Calls(os.system, "exit 3")}, path),
            "it holds a pickled posix.system (its module posix is blocked",
        ),
        (lambda path: torch.save(Calls(builtins.eval, "1"), path), "it holds a pickled eval (not an allowed global"),
        (lambda path: torch.save(Calls(builtins.exec, "1"), path), "it holds a pickled exec (not an allowed global"),
        (lambda path: torch.save(torch.nn.Identity(), path), "it holds a pickled torch.nn.modules.linear.Identity"),
        (  # a plain pickle.dump (protocol 5): the instruction torch stops at, and what it would import
            lambda path: path.write_bytes(pickle.dumps(Calls(os.system, "exit 3"), protocol=5)),
            "the pickle instruction FRAME (149), which weights-only loading does not run, importing posix.system",
        ),
        (  # protocol 0, by hand: INST builds os.system('exit 3')
            lambda path: path.write_bytes(b"(S'exit 3'\nios\nsystem\n."),
            "the pickle instruction STRING (83), which weights-only loading does not run, importing os.system",
        ),
        (lambda path: path.write_bytes(pickle.dumps(Calls(os.system, "exit 3"), protocol=0)), "posix.system (its module posix"),
    ],
)
def test_a_pickle_that_would_run_code_is_refused_as_unsafe(tmp_path: Path, write: Any, reason: str) -> None:
    path = tmp_path / "evil.pth"
    write(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's warning of a pickle protocol is no line of ours (nor, as an error, a crash)
        with pytest.raises(HarnessError) as info:
            safe_load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {UNSAFE}") and reason in message and NOTHING_RAN in message, message
    assert "corrupt" not in message and "Re-running" not in message and "\n" not in message


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"garbage" * 10, "not a loadable weights-only checkpoint (unreadable: corrupt, truncated or not a PyTorch file"),
        (b"not a checkpoint", "unreadable: corrupt, truncated"),
        (pickle.dumps({"weights": [1.0, 2.0]}, protocol=5), "(a pickle with the pickle instruction FRAME (149)"),
    ],
)
def test_a_corrupt_or_foreign_file_is_not_called_unsafe(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(HarnessError, match="not a loadable weights-only checkpoint") as info:
        safe_load(path)
    assert reason in str(info.value) and "unsafe" not in str(info.value)


def test_a_truncated_checkpoint_is_corrupt(tmp_path: Path) -> None:
    torch.save({"w": torch.zeros(1000)}, tmp_path / "whole.pth")
    data = (tmp_path / "whole.pth").read_bytes()
    (tmp_path / "half.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(HarnessError, match="unreadable: corrupt, truncated or not a PyTorch file"):
        safe_load(tmp_path / "half.pth")


def test_meta_and_sparse_tensors_are_refused_naming_the_tensor(tmp_path: Path) -> None:
    """A meta tensor loads (a shape without values), then failed in load_state_dict with an 80-line traceback."""
    torch.save({"conv.weight": torch.zeros(2), "conv.bias": torch.empty(4, device="meta")}, tmp_path / "meta.pth")
    with pytest.raises(HarnessError, match=r"meta\.pth: tensor conv\.bias is a meta tensor \(a shape without values"):
        read_model_checkpoint(tmp_path / "meta.pth")
    torch.save({"format": CHECKPOINT_FORMAT, "state_dict": {"weight": torch.eye(3).to_sparse()}}, tmp_path / "sparse.pth")
    with pytest.raises(
        HarnessError, match=r"sparse\.pth: tensor state_dict\.weight is torch\.sparse_coo \(sparse\); expected dense"
    ):
        read_model_checkpoint(tmp_path / "sparse.pth")


def _nested(levels: int) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for _ in range(levels):
        record = {"stage": "train", "parent_provenance": record}
    return record


def test_nesting_is_bounded_when_a_checkpoint_is_read(tmp_path: Path) -> None:
    """A provenance 5,000 levels deep loaded, and training failed with a RecursionError saving its output."""
    state = {"w": torch.zeros(1)}
    save_model_checkpoint(tmp_path / "ok.pth", ModelCheckpoint("rfdn", {}, state, provenance=_nested(MAX_NESTING - 2)))
    assert read_model_checkpoint(tmp_path / "ok.pth").provenance["stage"] == "train"
    save_model_checkpoint(tmp_path / "deep.pth", ModelCheckpoint("rfdn", {}, state, provenance=_nested(MAX_NESTING + 50)))
    with pytest.raises(
        HarnessError, match=rf"deep\.pth: nested deeper than {MAX_NESTING} levels \(at provenance\.parent_provenance"
    ):
        read_model_checkpoint(tmp_path / "deep.pth")
    itself: dict[str, Any] = {"w": torch.zeros(1)}
    itself["self"] = itself  # a pickle can hold a container inside itself
    torch.save(itself, tmp_path / "cycle.pth")
    with pytest.raises(HarnessError, match=r"cycle\.pth: nested deeper than"):
        safe_load(tmp_path / "cycle.pth")


def test_shared_containers_are_walked_once_per_depth(tmp_path: Path) -> None:
    """100 levels of lists each holding the next twice: 2**100 paths, one container per level."""
    top: list[Any] = []
    level = top
    for _ in range(100):
        inner: list[Any] = []
        level.extend([inner, inner])
        level = inner
    torch.save(top, tmp_path / "shared.pth")
    start = time.perf_counter()
    safe_load(tmp_path / "shared.pth")
    assert time.perf_counter() - start < 5.0


def test_a_multi_line_torch_error_keeps_its_reason_on_one_line() -> None:
    """benchmark.py's line once stopped at "Error(s) in loading state_dict for RFDN:", before the reason."""
    err = RuntimeError('Error(s) in loading state_dict for RFDN:\n\tWhile copying "a": Cannot copy out of meta tensor\n\tmore')
    assert first_line(err) == 'Error(s) in loading state_dict for RFDN: While copying "a": Cannot copy out of meta tensor'
    assert first_line(RuntimeError("x" * 400)).endswith("...") and len(first_line(RuntimeError("x" * 400))) == 300


def test_weights_that_are_not_finite_are_refused_naming_the_tensor(tmp_path: Path) -> None:
    state = {"conv.weight": torch.zeros(2, 3), "conv.bias": torch.tensor([1.0, float("inf")]), "steps": torch.tensor(3)}
    torch.save(state, tmp_path / "inf.pth")
    with pytest.raises(
        HarnessError, match=r"inf\.pth: weights hold values that are not finite \(1 of 2 in conv\.bias are NaN or infinity\)"
    ):
        read_model_checkpoint(tmp_path / "inf.pth")
    state["conv.bias"] = torch.ones(2)
    torch.save(state, tmp_path / "ok.pth")
    assert read_model_checkpoint(tmp_path / "ok.pth").state_dict["steps"].item() == 3
    # weights of several dtypes are checked per dtype: a NaN among half-precision weights, a float64 beyond float32
    state.update(
        {"half.weight": torch.tensor([0.5, float("nan")], dtype=torch.float16), "big": torch.tensor([1e300], dtype=torch.float64)}
    )
    torch.save(state, tmp_path / "nan16.pth")
    with pytest.raises(HarnessError, match=r"not finite \(1 of 2 in half\.weight are NaN or infinity\)"):
        read_model_checkpoint(tmp_path / "nan16.pth")
    state["half.weight"] = torch.ones(2, dtype=torch.float16)
    torch.save(state, tmp_path / "mixed.pth")
    assert read_model_checkpoint(tmp_path / "mixed.pth").state_dict["big"].item() == 1e300


def test_a_file_read_again_is_a_fresh_copy_and_a_changed_file_is_read_anew(tmp_path: Path) -> None:
    """safe_load keeps what a file held by its contents: a caller that changes what it got changes nothing for the
    next, and a file written since, even in place with the same size at once, gives its new contents."""
    path = tmp_path / "w.pth"
    torch.save({"w": torch.zeros(3), "meta": {"iteration": 1}}, path)
    first = safe_load(path)
    first["w"] += 1
    first["meta"]["iteration"] = 99
    again = safe_load(path)
    assert again["meta"]["iteration"] == 1 and bool((again["w"] == 0).all())
    size = path.stat().st_size
    torch.save({"w": torch.full((3,), 2.0), "meta": {"iteration": 2}}, path)  # in place, the same size
    changed = safe_load(path)
    assert path.stat().st_size == size and changed["meta"]["iteration"] == 2 and bool((changed["w"] == 2).all())
    save_model_checkpoint(path, ModelCheckpoint("rfdn", {}, {"w": torch.ones(3)}))  # replaced (atomic write)
    assert bool((read_model_checkpoint(path).state_dict["w"] == 1).all())


def test_a_copy_of_a_read_file_shares_no_tensor_or_container_with_the_next(tmp_path: Path) -> None:
    """What safe_load keeps is copied for each caller: tensors cloned (parameters stay parameters), a container held
    twice stays one container, and an optimizer resumed from one copy leaves the next copy's moments as saved."""
    shared = [torch.zeros(2)]
    weight = nn.Parameter(torch.ones(2))
    torch.save({"a": shared, "b": shared, "p": weight, "size": torch.Size([2]), "ordered": OrderedDict(x=1)}, tmp_path / "s.pth")
    first = safe_load(tmp_path / "s.pth")
    assert first["a"] is first["b"] and isinstance(first["p"], nn.Parameter) and first["p"].requires_grad
    assert type(first["ordered"]) is OrderedDict and first["size"] == torch.Size([2])
    model = nn.Linear(2, 1)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    torch.save({"optimizer": optimizer.state_dict()}, tmp_path / "state.pth")
    saved = [value.clone() for value in optimizer.state_dict()["state"][0].values()]
    resumed = torch.optim.Adam(model.parameters())
    resumed.load_state_dict(safe_load(tmp_path / "state.pth")["optimizer"])
    model(torch.ones(1, 2)).sum().backward()
    resumed.step()  # updates the moments it was given in place
    again = list(safe_load(tmp_path / "state.pth")["optimizer"]["state"][0].values())
    assert all(torch.equal(a, b) for a, b in zip(again, saved, strict=True))


def test_a_copy_keeps_what_the_file_held_views_expansions_and_state_dict_metadata(tmp_path: Path) -> None:
    base = torch.arange(6.0)
    state = nn.BatchNorm2d(2).state_dict()  # an OrderedDict with _metadata (the module versions load_state_dict reads)
    torch.save({"base": base, "view": base[2:4], "wide": torch.ones(1).expand(1000, 1000), "bn": state}, tmp_path / "v.pth")
    for _ in range(2):  # the first read and a kept one
        loaded = safe_load(tmp_path / "v.pth")
        loaded["base"][2] = -1.0
        assert loaded["view"][0].item() == -1.0  # still a view of the same storage
        assert loaded["wide"].untyped_storage().nbytes() == 4 and loaded["wide"].shape == (1000, 1000)
        assert loaded["bn"]._metadata == state._metadata


def test_a_file_that_cannot_be_read_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.pth"
    torch.save({"w": torch.zeros(1)}, path)

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(
        HarnessError, match=r"locked\.pth: not a loadable weights-only checkpoint \(unreadable: .*Permission denied"
    ):
        safe_load(path)
