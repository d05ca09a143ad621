"""Reader for the mlearn data sets (Zuo et al., J. Phys. Chem. A 124, 731 (2020)) in ../shared/data/mlearn.

Each JSON file is a list of records: ``structure`` (a pymatgen Structure as dict: ``lattice.matrix`` rows Å,
``sites[].xyz`` Å, ``sites[].species[0].element``), ``outputs.energy`` (eV, total), ``outputs.forces``
(eV/Å), ``group`` and ``description``. ``outputs.virial_stress`` (VASP kBar, sign and order not stated
in the files) is not read.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers

from hmc_core.configurations import make_configurations


def read_mlearn(path: str | Path):
    """A configurations dataset (with a ``group`` variable) from one mlearn JSON file."""
    records = json.loads(Path(path).read_text())
    pos, spc, cells, energy, forces, groups = [], [], [], [], [], []
    for rec in records:
        st = rec["structure"]
        pos.append(np.array([site["xyz"] for site in st["sites"]], dtype=float))
        spc.append(np.array([atomic_numbers[site["species"][0]["element"]] for site in st["sites"]]))
        cells.append(np.array(st["lattice"]["matrix"], dtype=float))
        energy.append(float(rec["outputs"]["energy"]))
        forces.append(np.array(rec["outputs"]["forces"], dtype=float))
        groups.append(str(rec.get("group", "")))
    ds = make_configurations(pos, spc, cells, [(True, True, True)] * len(pos), energy=energy, forces=forces,
                             attrs={"source": str(path)})
    ds["group"] = ("config", np.array(groups))
    return ds
