"""Campaign systems: built-in molecules/clusters or structure files, and the random-displacement starting set."""

from __future__ import annotations

import numpy as np
import xarray as xr

from hmc_core.configurations import config_arrays, from_atoms, make_configurations, read_structures
from hmc_core.neighbors import closest_pair

EXTRA_BUILTINS = ("ar13", "water-dimer")


def builtin_system(name: str) -> xr.Dataset:
    """A built-in open-boundary system: any molecule name of ASE's G2 collection (``H2O``, ``CH4``, ``NH3`` …),
    ``water-dimer`` (S22 geometry) or ``ar13`` (icosahedral argon cluster, 3.72 Å nearest neighbours)."""
    from ase.build import molecule
    from ase.collections import g2, s22

    if name == "ar13":
        from ase.cluster import Icosahedron

        atoms = Icosahedron("Ar", noshells=2, latticeconstant=5.26)
    elif name == "water-dimer":
        atoms = s22["Water_dimer"]
    elif name in g2.names:
        atoms = molecule(name)
    else:
        near = [n for n in g2.names if n.lower() == name.lower()]
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ValueError(f"unknown built-in system {name!r}{hint}; use an ASE G2 molecule name such as H2O, CH4, "
                         f"NH3, C2H6, or one of {', '.join(EXTRA_BUILTINS)}, or give `structure = \"file\"`")
    atoms.center()
    atoms.cell[:] = 0.0
    atoms.pbc = False
    return from_atoms([atoms], attrs={"source": f"builtin:{name}"})


def load_system(builtin: str | None, structure=None, index: str = ":", species=None) -> xr.Dataset:
    """Reference structure(s) of a campaign as a configurations dataset (``species``: elements of the atom types
    of an MLIP ``.cfg`` file)."""
    if structure is not None:
        return read_structures(structure, index=index, species=species)
    return builtin_system(builtin)


def rattled_set(structures: xr.Dataset, n: int, sigma: float, min_dist: float, seed: int,
                max_tries: int = 1000) -> xr.Dataset:
    """``n`` configurations: the structures in turn, every coordinate displaced by N(0, σ²) (σ in Å);
    draws with two atoms closer than ``min_dist`` (Å) are redrawn. Deterministic for ``seed``."""
    rng = np.random.default_rng(seed)
    pos, spc, cells, pbcs = [], [], [], []
    for k in range(n):
        p0, z, cell, pbc = config_arrays(structures, k % structures.sizes["config"])
        for _ in range(max_tries):
            p = p0 + rng.normal(0.0, sigma, p0.shape)
            if closest_pair(p, cell, pbc, min_dist) is None:
                break
        else:
            raise ValueError(f"could not displace structure {k % structures.sizes['config']} by σ = {sigma} Å "
                             f"without atoms closer than {min_dist} Å in {max_tries} draws (a smaller displacement or "
                             "minimum distance would do)")
        pos.append(p)
        spc.append(z)
        cells.append(cell)
        pbcs.append(pbc)
    return make_configurations(pos, spc, cells, pbcs, attrs={"source": f"rattle sigma={sigma} seed={seed}"})
