"""pesflow numerics: configurations schema, neighbour lists, potentials, integrators, HMC.

Pure numerics (numpy/numba/scipy/xarray); never imports Prefect, PySCF, ``tasks`` or ``flows``.
Units: Å, eV, eV/Å, amu, K ("metal") or reduced Lennard-Jones units ("lj"); see :mod:`hmc_core.units`.
"""

__version__ = "0.1.0"
