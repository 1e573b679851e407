"""The model registry: every architecture a checkpoint can name, built from its ``config``.

A checkpoint stores ``arch`` and ``config`` (every layer width); ``build_model`` turns them back into an untrained
module and ``model_config`` reads them off a module. A new network variant registers here once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn as nn

from models.branch import BranchPRFDN
from models.helpers import HelperPRFDN
from models.team00_RFDN import RFDN
from models.team13_PRFDN import PRFDN, PRFDNConfig, RFDNChain


class UnknownArchitectureError(ValueError):
    """A checkpoint names an architecture this registry does not hold."""


ARCHITECTURES: dict[str, Callable[[dict[str, Any]], nn.Module]] = {
    "rfdn": lambda config: RFDN(),
    "branch": lambda config: BranchPRFDN(**config),
    "prfdn": lambda config: PRFDN(PRFDNConfig.from_config(config)),
    "prfdn_helpers": lambda config: HelperPRFDN(PRFDNConfig.from_config(config)),
    "rfdn_chain": RFDNChain,
}


def build_model(arch: str, config: dict[str, Any]) -> nn.Module:
    """An untrained module of architecture ``arch`` with the widths of ``config``."""
    if arch not in ARCHITECTURES:
        *others, last = ARCHITECTURES
        raise UnknownArchitectureError(f"unknown architecture {arch!r}: expected {', '.join(others)} or {last}")
    return ARCHITECTURES[arch](config)


def model_config(model: nn.Module) -> tuple[str, dict[str, Any]]:
    """(architecture name, config) that ``build_model`` turns back into ``model``'s structure."""
    if isinstance(model, RFDN):
        return "rfdn", {}
    if isinstance(model, BranchPRFDN):
        return "branch", dict(model.config)
    if isinstance(model, RFDNChain):
        return "rfdn_chain", dict(model.config)
    if isinstance(model, PRFDN):
        return getattr(model, "ARCH", "prfdn"), model.cfg.to_config()
    raise TypeError(f"no architecture name for {type(model).__name__}")
