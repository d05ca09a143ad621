"""Per-frame analyses of the phase runs (callables ``analyse(positions, cell) -> dict`` for
:func:`hmc_core.npt.run_npt_chain`), built on the local order parameters of :mod:`hmc_core.order`.

Positions and cells in the system's length unit (σ or Å); fractions are per atom, cluster sizes in atoms.
"""

from __future__ import annotations

import numpy as np

from hmc_core.order import STRUCTURES, compute_order


class OrderAnalysis:
    """Order-parameter summary of a frame (:meth:`hmc_core.order.OrderParameters.summary`), the structure
    composition of the largest solid cluster (``largest_<structure>``, fractions) and, with ``tracked``
    (N,) bool, how many tracked atoms are solid-like (``seed_solid_fraction``) and in the largest cluster
    (``seed_in_largest``). ``cutoff``: first-shell radius (length units; default from the density)."""

    def __init__(self, cutoff: float | None = None, tracked: np.ndarray | None = None):
        self.cutoff = cutoff
        self.tracked = tracked

    def __call__(self, positions: np.ndarray, cell: np.ndarray) -> dict:
        op = compute_order(positions, cell, cutoff=self.cutoff)
        out = op.summary()
        in_largest = op.cluster == 0
        n_largest = max(int(in_largest.sum()), 1)
        for k, name in enumerate(STRUCTURES):
            out[f"largest_{name}"] = float(np.sum(op.structure[in_largest] == k)) / n_largest
        if self.tracked is not None:
            out["seed_solid_fraction"] = float(op.solid[self.tracked].mean())
            out["seed_in_largest"] = float(in_largest[self.tracked].mean())
        return out


class SolidFraction:
    """Per-frame analysis for coexistence runs: ten Wolde–Frenkel solid-like fraction, largest cluster and
    the solid fraction per z slab (no CNA: it is the slow part at ~2000 atoms)."""

    def __init__(self, cutoff: float, n_slabs: int = 24):
        self.cutoff = cutoff
        self.n_slabs = n_slabs

    def __call__(self, positions: np.ndarray, cell: np.ndarray) -> dict:
        op = compute_order(positions, cell, cutoff=self.cutoff, structures=False)
        out = {"solid_fraction": float(op.solid.mean()), "largest_cluster": float(op.largest_cluster)}
        frac_z = (positions @ np.linalg.inv(cell))[:, 2] % 1.0
        slab = np.minimum((frac_z * self.n_slabs).astype(int), self.n_slabs - 1)
        counts = np.bincount(slab, minlength=self.n_slabs)
        solid = np.bincount(slab, weights=op.solid.astype(float), minlength=self.n_slabs)
        for k in range(self.n_slabs):
            out[f"slab_{k:02d}"] = float(solid[k] / counts[k]) if counts[k] else float("nan")
        return out
