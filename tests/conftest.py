"""Shared test fixtures: the path to ../shared/data and small structures."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PESFLOW_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def fcc_lattice(n_cells: int, density: float) -> tuple[np.ndarray, np.ndarray]:
    """FCC positions (4 n³, 3) and cubic cell at number density ``density`` (reduced units)."""
    a = (4.0 / density) ** (1.0 / 3.0)
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    grid = np.array([[i, j, k] for i in range(n_cells) for j in range(n_cells) for k in range(n_cells)])
    pos = (grid[:, None, :] + basis[None]).reshape(-1, 3) * a
    return pos, np.eye(3) * a * n_cells
