"""Shared test set-up: a tiny embedded dataset for training tests, and how long each
notebook took in the papermill smoke run."""

import os

import pytest
import torch

from apslib import data


@pytest.fixture(scope="session", autouse=True)
def private_validation_cache(tmp_path_factory):
    """The data validator's cache in a temporary folder, not the user's ~/.cache/apslib
    (set for the whole session, before any module fixture writes data; subprocesses of the
    tests inherit it)."""
    old = os.environ.get("APSLIB_CACHE_DIR")
    os.environ["APSLIB_CACHE_DIR"] = str(tmp_path_factory.mktemp("apslib-cache"))
    yield
    if old is None:
        os.environ.pop("APSLIB_CACHE_DIR", None)
    else:
        os.environ["APSLIB_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is fastest, and much faster on a busy machine. A module
    uses it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """2 training and 1 validation volume of 2 slices, 32x32 (one per test module)."""
    root = tmp_path_factory.mktemp("data")
    data.synthesize_dataset(
        root, size=32, train_volumes=2, val_volumes=1, slices_per_volume=2, progress=False
    )
    return root


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    times = getattr(config, "notebook_times", None)  # set by tests/test_notebooks.py
    if not times:
        return
    terminalreporter.section("notebooks at the smoke profile (papermill)")
    for name, seconds, ok in times:
        terminalreporter.write_line(f"{name:<40} {'ok' if ok else 'FAILED':<7} {seconds:7.1f} s")
    total = sum(s for _, s, _ in times)
    terminalreporter.write_line(f"{'all notebooks':<40} {'':<7} {total:7.1f} s")
