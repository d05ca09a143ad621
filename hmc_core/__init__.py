"""pesflow numerics: configurations schema, neighbour lists, potentials, integrators, HMC, phase studies.

Layer rule (checked by ``tests/test_layers.py``): hmc_core imports numpy, numba, scipy, scikit-learn,
xarray and ASE (ASE for structures, file formats and calculators only), never Prefect, PySCF, typer, rich,
``tasks`` or ``flows``.
Units: Å, eV, eV/Å, amu, K ("metal") or reduced Lennard-Jones units ("lj"); see :mod:`hmc_core.units`.

Phase studies, one module per concept: :mod:`hmc_core.structures` (lattices, icosahedra, seeds, defects,
two-phase boxes), :mod:`hmc_core.phase_system` (the one-component system, its units and bulk crystal),
:mod:`hmc_core.phase_analysis` (per-frame order analyses), :mod:`hmc_core.ladders` (heating/cooling
ladders, melting bracket), :mod:`hmc_core.seeding` (seeded crystallisation), :mod:`hmc_core.coexistence`
(two-phase runs).
"""

__version__ = "0.1.0"
