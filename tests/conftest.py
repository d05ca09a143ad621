"""Shared test fixtures: the path to ../shared/data, optional test dependencies, and small structures.

A test whose input is missing (``../shared/data``, or an optional package such as motep, arviz or tblite)
is skipped on a developer's machine but FAILS under CI (environment variable ``CI`` set and not
"0"/"false"/"no"; ``.ci/run`` exports CI=true): CI installs every test dependency and has the shared data,
so a skip there would hide a broken set-up and let the tests behind it rot unseen.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PESFLOW_SHARED_DATA", ROOT.parent / "shared" / "data"))


INSTALL_HINT = "install the test dependencies with `.venv/bin/pip install -e '.[dev,bench]'` (or `make test`)"


def in_ci() -> bool:
    """True when the environment variable CI is set to anything but "", "0", "false" or "no"."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(what: str, fix: str) -> NoReturn:
    """Skip the current test (or module) because ``what`` is missing; under CI fail instead, saying how to fix."""
    if in_ci():
        pytest.fail(f"{what}; CI must provide it (CI is set, so this is a failure, not a skip). Fix: {fix}",
                    pytrace=False)
    pytest.skip(f"{what} (fix: {fix})", allow_module_level=True)


def require_module(name: str, fix: str = INSTALL_HINT) -> ModuleType:
    """Import ``name`` for a test: like ``pytest.importorskip``, but a failure under CI (see :func:`missing`)."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        missing(f"the optional test dependency {name!r} cannot be imported ({err})", fix)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (or $PESFLOW_SHARED_DATA); a skip outside CI, a failure under CI when it is missing."""
    if not SHARED_DATA.is_dir():
        missing(f"the shared data folder {SHARED_DATA} does not exist",
                "check out the project's shared/ folder beside the repository, or set PESFLOW_SHARED_DATA to it")
    return SHARED_DATA


def fcc_lattice(n_cells: int, density: float) -> tuple[np.ndarray, np.ndarray]:
    """FCC positions (4 n³, 3) and cubic cell at number density ``density`` (reduced units)."""
    a = (4.0 / density) ** (1.0 / 3.0)
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    grid = np.array([[i, j, k] for i in range(n_cells) for j in range(n_cells) for k in range(n_cells)])
    pos = (grid[:, None, :] + basis[None]).reshape(-1, 3) * a
    return pos, np.eye(3) * a * n_cells


@pytest.fixture(scope="module")
def prefect_api():
    """A Prefect API for in-process flow runs: the running server named by PESFLOW_TEST_PREFECT_API_URL (set by
    ``bench/mutation.py``, which starts one server for all mutants), else a temporary one (Prefect's test
    harness, started once per test module)."""
    url = os.environ.get("PESFLOW_TEST_PREFECT_API_URL")
    if url:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: url}):
            yield url
    else:
        from prefect.testing.utilities import prefect_test_harness

        with prefect_test_harness(server_startup_timeout=180):
            yield None
