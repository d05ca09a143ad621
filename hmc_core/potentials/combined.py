"""Sums of potentials: U = Σ_k w_k U_k (e.g. Lennard-Jones + a confining wall, or a fitted potential
minus a pair repulsion as the outer part of a multiple-time-step split).

All terms share one neighbour list built with the largest cutoff; each term's kernel applies its own
cutoff. Energies, forces (N, 3) and virials (3, 3) add with the weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hmc_core.neighbors import NeighborList
from hmc_core.potentials.base import Potential, PotentialError


class SumPotential(Potential):
    """``terms``: potentials with the same units and neighbour-list kind (terms that use no neighbour list, such as
    a confining wall, go with either kind); ``weights``: one per term (default 1)."""

    def __init__(self, terms: Sequence[Potential], weights: Sequence[float] | None = None):
        self.terms = list(terms)
        if not self.terms:
            raise PotentialError("SumPotential needs at least one term")
        self.weights = [1.0] * len(self.terms) if weights is None else [float(w) for w in weights]
        if len(self.weights) != len(self.terms):
            raise PotentialError(f"{len(self.weights)} weights for {len(self.terms)} terms")
        listed = [t for t in self.terms if t.uses_neighbor_list] or self.terms  # a wall needs no list
        if len({t.full_neighbor_list for t in listed}) > 1:
            raise PotentialError("terms mix full and half neighbour lists; they cannot share one list")
        if len({t.units for t in self.terms}) > 1:
            raise PotentialError(f"terms use different units: {[t.units for t in self.terms]}")
        self.full_neighbor_list = listed[0].full_neighbor_list
        self.uses_neighbor_list = any(t.uses_neighbor_list for t in self.terms)
        self.units = self.terms[0].units
        self.cutoff = max(t.cutoff for t in self.terms)
        self._types: list[np.ndarray] = []

    def prepare(self, species: np.ndarray) -> np.ndarray:
        self._types = [t.prepare(species) for t in self.terms]
        return np.ascontiguousarray(species, dtype=np.int32)

    def compute(self, positions, cell, types, nlist: NeighborList):
        if not self._types:
            self.prepare(types)
        energy, forces, virial = 0.0, np.zeros_like(positions), np.zeros((3, 3))
        for w, term, t in zip(self.weights, self.terms, self._types, strict=True):
            e, f, v = term.compute(positions, cell, t, nlist)
            energy += w * e
            forces += w * f
            virial += w * v
        return energy, forces, virial

    def describe(self) -> dict:
        out = {"name": "SumPotential", "cutoff": self.cutoff, "weights": str(self.weights)}
        for k, term in enumerate(self.terms):
            out.update({f"term{k}_{key}": v for key, v in term.describe().items()})
        return out
