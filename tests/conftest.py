"""Shared pytest set-up for the whole suite."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One torch intra-op thread for the whole session, restored at the end.

    The tests use tiny models, where OpenMP threads spin-waiting on a busy 2-core machine make
    multi-threading many times slower. Only a session whose collected modules imported torch
    touches it, so memenvs-only runs (numpy + gymnasium) do not pay for importing torch.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
