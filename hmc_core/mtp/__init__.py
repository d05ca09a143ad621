"""Moment Tensor Potential (Shapeev's MTP) with MLIP conventions: files, evaluation, basis, fitting.

Modules: :mod:`.basis` (moment/contraction lists), :mod:`.levels` (generate them for a level),
:mod:`.io` (``.mtp``/``.cfg``), :mod:`.evaluate` (Numba kernels), :mod:`.potential` (:class:`MTP`),
:mod:`.fit` (linear and full fits), :mod:`.calculator` (ASE calculator).

Interface for uncertainty/selection (MaxVol grade, Bayesian variance)
--------------------------------------------------------------------
``per_atom_basis(mtp, positions, cell, pbc, species, include_species=False) -> (N, K)``
    The linear basis of every atom: column s is B_s(atom) = moment ``alpha_moment_mapping[s]`` of the
    atom's neighbourhood (K = ``mtp.n_basis``). With ``include_species=True`` the first
    ``mtp.n_species`` columns are one-hot species indicators (the species constants), so that
    ``E_i = row_i · mtp.linear_coefficients`` exactly.
``basis_matrix(mtp, configs, mode="atom"|"config", include_species=False) -> ndarray``
    The same over a configurations dataset: ``"atom"`` stacks the rows of all real atoms, config by
    config ((Σ n_atoms, K)); ``"config"`` sums them per configuration ((n_config, K)), so
    ``E_config = row · linear_coefficients``.
``MTP.linear_coefficients`` (get/set): ``species_coeffs`` then ``moment_coeffs`` (n_species + n_basis,),
    so a linear model fitted elsewhere (e.g. scikit-learn BayesianRidge on ``basis_matrix(...,
    include_species=True)``) can be put in.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from hmc_core.configurations import config_arrays, validate
from hmc_core.mtp.basis import BasisError, MomentBasis
from hmc_core.mtp.io import MTPFileError, read_basis, read_cfg, read_mtp, write_cfg, write_mtp
from hmc_core.mtp.potential import MTP
from hmc_core.neighbors import NeighborList

__all__ = ["MTP", "BasisError", "MTPFileError", "MomentBasis", "basis_matrix", "per_atom_basis", "read_basis",
           "read_cfg", "read_mtp", "write_cfg", "write_mtp"]


def per_atom_basis(mtp: MTP, positions, cell, pbc, species, include_species: bool = False) -> np.ndarray:
    """Per-atom basis values (N, K) of one structure (see module docstring for the columns).

    ``positions`` (N, 3) Å, ``cell`` (3, 3) Å rows = lattice vectors (ignored in open directions),
    ``pbc`` three booleans, ``species`` (N,) atomic numbers. Numba kernel, no Python per atom.
    """
    x = np.array(positions, dtype=np.float64).reshape(-1, 3)
    cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=np.float64).reshape(3, 3)
    types = mtp.prepare(species)
    nlist = NeighborList(mtp.cutoff, 0.0, full=True)
    x = nlist.build(x, cell, pbc)  # shifts refer to the wrapped positions
    b = mtp.site_basis(x, cell, types, nlist)
    if not include_species:
        return b
    onehot = np.zeros((len(x), mtp.n_species))
    onehot[np.arange(len(x)), types] = 1.0
    return np.concatenate([onehot, b], axis=1)


def basis_matrix(mtp: MTP, configs: xr.Dataset, mode: str = "atom", include_species: bool = False) -> np.ndarray:
    """Basis rows of every atom (``mode="atom"``, (Σ n_atoms, K)) or per-configuration sums
    (``mode="config"``, (n_config, K)) of a configurations dataset."""
    if mode not in ("atom", "config"):
        raise ValueError(f"mode must be 'atom' or 'config', got {mode!r}")
    validate(configs)
    rows = []
    for k in range(configs.sizes["config"]):
        x, z, cell, pbc = config_arrays(configs, k)
        b = per_atom_basis(mtp, x, cell, pbc, z, include_species)
        rows.append(b if mode == "atom" else b.sum(0, keepdims=True))
    width = mtp.n_basis + (mtp.n_species if include_species else 0)
    return np.concatenate(rows, axis=0) if rows else np.zeros((0, width))
