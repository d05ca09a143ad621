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
    (N,) bool, the fraction of tracked atoms that are solid (``seed_solid_fraction``) and in the largest
    cluster (``seed_in_largest``). ``cutoff``: first-shell radius (length units; default from the density).

    ``clusters`` chooses what "solid" and ``largest_cluster`` mean:

    * ``"q6"``: ten Wolde–Frenkel solid-like atoms (≥ 7 q6 bonds) and their clusters — the usual measure of
      fcc/hcp/bcc nuclei, blind to icosahedral order and to the surface of small seeds;
    * ``"units"``: clusters of ordered a-CNA units (an atom labelled fcc, hcp, bcc, ico or five-fold with its
      12 or 14 shell neighbours, :mod:`hmc_core.order`): recognises seeds of every inserted structure,
      surface layer included. ``largest_cluster_q6`` then keeps the ten Wolde–Frenkel size.
    """

    def __init__(self, cutoff: float | None = None, tracked: np.ndarray | None = None, clusters: str = "q6"):
        if clusters not in ("q6", "units"):
            raise ValueError(f"clusters must be 'q6' or 'units', got {clusters!r}")
        self.cutoff = cutoff
        self.tracked = tracked
        self.clusters = clusters

    def __call__(self, positions: np.ndarray, cell: np.ndarray) -> dict:
        op = compute_order(positions, cell, cutoff=self.cutoff)
        out = op.summary()
        if self.clusters == "units":
            out["largest_cluster_q6"] = out["largest_cluster"]
            out["largest_cluster"] = float(op.largest_unit_cluster)
            solid, in_largest = op.unit_cluster >= 0, op.unit_cluster == 0
        else:
            solid, in_largest = op.solid, op.cluster == 0
        n_largest = max(int(in_largest.sum()), 1)
        for k, name in enumerate(STRUCTURES):
            out[f"largest_{name}"] = float(np.sum(op.structure[in_largest] == k)) / n_largest
        if self.tracked is not None:
            out["seed_solid_fraction"] = float(solid[self.tracked].mean())
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
