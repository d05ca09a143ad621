"""MTP basis definitions: which moments exist and how they are contracted (MLIP conventions).

A :class:`MomentBasis` is the level-dependent part of an ``.mtp`` file:

* ``alpha_index_basic`` (n_basic, 4) int32: basic moment k = {μ, a, b, c}:  M_k = Σ_j f_μ(r_ij) u_x^a u_y^b u_z^c,
  i.e. one Cartesian component of the moment tensor M_{μ,ν} (ν = a + b + c) built from unit vectors;
* ``alpha_index_times`` (n_times, 4) int32: rows {p, q, mult, t}: moment t += mult · moment p · moment q;
* ``alpha_moment_mapping`` (n_basis,) int32: the scalar moments used as basis functions B_s;
* ``alpha_moments_count``: basic moments plus all contracted components.

:func:`generate_basis` (in :mod:`hmc_core.mtp.levels`) builds these lists for any level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class BasisError(ValueError):
    """A basis definition is inconsistent (indices out of range, moments used before they are complete)."""


@dataclass(frozen=True, eq=False)
class MomentBasis:
    """Moment and contraction lists of an MTP (see module docstring); ``level`` is informative (or None)."""

    radial_funcs_count: int
    alpha_moments_count: int
    alpha_index_basic: np.ndarray
    alpha_index_times: np.ndarray
    alpha_moment_mapping: np.ndarray
    level: int | None = None

    def __post_init__(self):
        basic = np.ascontiguousarray(np.asarray(self.alpha_index_basic, dtype=np.int32).reshape(-1, 4))
        times = np.ascontiguousarray(np.asarray(self.alpha_index_times, dtype=np.int32).reshape(-1, 4))
        mapping = np.ascontiguousarray(np.asarray(self.alpha_moment_mapping, dtype=np.int32).reshape(-1))
        object.__setattr__(self, "alpha_index_basic", basic)
        object.__setattr__(self, "alpha_index_times", times)
        object.__setattr__(self, "alpha_moment_mapping", mapping)
        n = int(self.alpha_moments_count)
        object.__setattr__(self, "alpha_moments_count", n)
        if len(basic) and (basic[:, 0].min() < 0 or basic[:, 0].max() >= self.radial_funcs_count):
            raise BasisError(f"alpha_index_basic uses radial functions {sorted(set(basic[:, 0]))}, but "
                             f"radial_funcs_count = {self.radial_funcs_count}")
        if len(basic) and basic[:, 1:].min() < 0:
            raise BasisError("alpha_index_basic has negative powers")
        if len(basic) > n:
            raise BasisError(f"{len(basic)} basic moments but alpha_moments_count = {n}")
        if len(times):
            if times[:, [0, 1, 3]].min() < 0 or times[:, [0, 1, 3]].max() >= n:
                raise BasisError(f"alpha_index_times refers to moments outside 0..{n - 1}")
            if times[:, 3].min() < len(basic):
                raise BasisError("alpha_index_times writes into a basic moment")
            # Each product may only use moments that are complete (no later row writes into them).
            last_write = np.full(n, -1)
            for row, t in enumerate(times[:, 3]):
                last_write[t] = row
            first_use = np.full(n, len(times))
            for row in range(len(times) - 1, -1, -1):
                first_use[times[row, 0]] = row
                first_use[times[row, 1]] = row
            bad = np.nonzero(last_write >= first_use)[0]
            if len(bad):
                raise BasisError(f"moment {bad[0]} is used in alpha_index_times before it is complete")
        if len(mapping) and (mapping.min() < 0 or mapping.max() >= n):
            raise BasisError(f"alpha_moment_mapping refers to moments outside 0..{n - 1}")

    @property
    def n_basis(self) -> int:
        """Number of basis functions (``alpha_scalar_moments``)."""
        return len(self.alpha_moment_mapping)

    @property
    def n_basic(self) -> int:
        return len(self.alpha_index_basic)

    def same_as(self, other: MomentBasis) -> bool:
        """True when both define the same lists (level and labels aside)."""
        return (self.radial_funcs_count == other.radial_funcs_count
                and self.alpha_moments_count == other.alpha_moments_count
                and np.array_equal(self.alpha_index_basic, other.alpha_index_basic)
                and np.array_equal(self.alpha_index_times, other.alpha_index_times)
                and np.array_equal(self.alpha_moment_mapping, other.alpha_moment_mapping))
