"""Shared fixtures. Third-party data is looked for in ../shared; tests needing it skip with the reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from models.team00_RFDN import RFDN

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
SHARED_RFDN = SHARED / "model_zoo" / "team00_rfdn.pth"
SHARED_BENCHMARK = SHARED / "benchmark"


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``-n 2``, the default here) each worker gets an equal share of the cores: PyTorch's own
    thread pool would otherwise start one thread per core in every worker and oversubscribe the machine. An
    OMP_NUM_THREADS set by the user is kept (e.g. 1, beside a training on the same cores)."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workers)))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run the checks marked slow (long on 2 CPU cores)")


# The files that take longest, scheduled first: pytest-xdist hands a worker a whole file at a time (--dist
# loadfile), so a long file started last would leave the other worker idle at the end.
LONGEST_FIRST = ("test_pipeline.py", "test_training.py", "test_transform_prune_export.py", "test_test_demo.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the order within a file is kept
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow on 2 CPU cores: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"needs {what} at {path} (third-party data in ../shared, absent here)")
    return path


@pytest.fixture(scope="session")
def rfdn_checkpoint() -> Path:
    """The official RFDN checkpoint (third-party)."""
    return require(SHARED_RFDN, "the official RFDN checkpoint team00_rfdn.pth")


@pytest.fixture(scope="session")
def benchmark_dir() -> Path:
    return require(SHARED_BENCHMARK, "the Set5/Set14/BSD68 benchmark images")


@pytest.fixture(scope="session")
def random_rfdn_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised RFDN state dict: exercises the harness without third-party weights."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "rfdn_random.pth"
    torch.save(RFDN().state_dict(), path)
    return path


@pytest.fixture(scope="session")
def any_rfdn_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The official checkpoint where present, else random weights of the same architecture."""
    if SHARED_RFDN.is_file():
        return SHARED_RFDN
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt_any") / "rfdn_random.pth"
    torch.save(RFDN().state_dict(), path)
    return path
