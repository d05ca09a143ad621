"""Per-call overhead of the ASE calculator adapter (``hmc_core.potentials.ase_adapter``).

Times one energy + forces call (median of repeated calls on slightly moved positions) for:
pesflow's native LJ (LJ₃₈ cluster, all pairs), the same native LJ wrapped as an ASE calculator and
read back through :class:`AseCalculatorPotential` (pure adapter round-trip overhead), ASE's own
Lennard-Jones calculator through the adapter, EMT (Cu, 108 atoms) and tblite GFN2-xTB (n-butane)
through the adapter versus calling the calculator directly. A missing competitor (tblite) gives null.

    python bench/ase_overhead.py --json bench/out/ase_overhead.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hmc_core.potentials import ForceField, LennardJones  # noqa: E402
from hmc_core.potentials.ase_adapter import AseCalculatorPotential, ForceFieldCalculator  # noqa: E402


def per_call(fn, x, repeats: int) -> float:
    rng = np.random.default_rng(0)
    fn(x.copy())
    times = []
    for _ in range(repeats):
        y = x + rng.normal(scale=1e-3, size=x.shape)
        t0 = time.perf_counter()
        fn(y)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def direct(atoms):
    def call(y):
        atoms.positions = y
        atoms.get_potential_energy()
        atoms.get_forces()
    return call


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    from ase import Atoms
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.lj import LennardJones as AseLJ

    rows = {}
    rng = np.random.default_rng(1)
    x = rng.uniform(-1.5, 1.5, (38, 3))
    from scipy.optimize import minimize

    ff_native = ForceField(LennardJones(cutoff_sigma=10.0), np.ones(38, int), skin=1.0)
    x = minimize(lambda f: (ff_native(f.reshape(38, 3).copy())[0], -ff_native(f.reshape(38, 3).copy())[1].ravel()),
                 x.ravel(), jac=True, method="L-BFGS-B", options={"maxiter": 200}).x.reshape(38, 3)
    species = np.ones(38, int)
    rows["LJ38 native"] = per_call(ForceField(LennardJones(cutoff_sigma=10.0), species, skin=1.0), x, args.repeats)
    wrapped = AseCalculatorPotential(ForceFieldCalculator(ForceField(LennardJones(cutoff_sigma=10.0), species,
                                                                     skin=1.0)), units="lj")
    rows["LJ38 native via ASE adapter"] = per_call(ForceField(wrapped, species), x, args.repeats)
    rows["LJ38 ASE LennardJones via adapter"] = per_call(
        ForceField(AseCalculatorPotential(AseLJ(sigma=1.0, epsilon=1.0, rc=10.0), units="lj"), species), x,
        args.repeats)
    atoms = Atoms("Ar38", positions=x)
    atoms.calc = AseLJ(sigma=1.0, epsilon=1.0, rc=10.0)
    rows["LJ38 ASE LennardJones direct"] = per_call(direct(atoms), x, args.repeats)
    cu = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(3)
    rows["Cu108 EMT via adapter"] = per_call(
        ForceField(AseCalculatorPotential(EMT()), cu.numbers, cu.cell.array, (1, 1, 1)), cu.positions, args.repeats)
    cu.calc = EMT()
    rows["Cu108 EMT direct"] = per_call(direct(cu), cu.positions.copy(), args.repeats)
    try:
        from ase.build import molecule
        from tblite.ase import TBLite

        butane = molecule("trans-butane")
        rows["n-butane GFN2-xTB via adapter"] = per_call(
            ForceField(AseCalculatorPotential(TBLite(method="GFN2-xTB", verbosity=0)), butane.numbers),
            butane.positions, max(20, args.repeats // 10))
        butane.calc = TBLite(method="GFN2-xTB", verbosity=0)
        rows["n-butane GFN2-xTB direct"] = per_call(direct(butane), butane.positions.copy(),
                                                    max(20, args.repeats // 10))
    except ImportError:
        rows["n-butane GFN2-xTB via adapter"] = rows["n-butane GFN2-xTB direct"] = None
    print(f"{'system / path':<38}{'µs per call':>14}")
    for k, v in rows.items():
        print(f"{k:<38}{'null' if v is None else f'{1e6 * v:14.1f}'}")
    overhead = rows["LJ38 native via ASE adapter"] - rows["LJ38 native"]
    print(f"adapter round-trip overhead (ASE Atoms + calculator protocol): {1e6 * overhead:.1f} µs per call")
    out = {"seconds_per_call": rows, "adapter_overhead_s": overhead}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
