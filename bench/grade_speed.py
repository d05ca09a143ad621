"""Cost of the extrapolation grade per HMC sample, next to the MTP energy+forces it accompanies.

On a rattled 1024-atom bcc Mo cell (as ``bench/mtp_speed.py``) and the MLIP fixtures of levels 10, 16
and 20 (../shared/data/mtp, cutoff 5 Å), times (median of repeats, µs per atom):

* ``energy_forces``: one MTP energy + forces + virial evaluation (prebuilt neighbour list, ForceField);
* ``basis``: the per-atom basis rows (:func:`hmc_core.mtp.per_atom_basis`, neighbour list built inside);
* ``grade_kernel``: γ = max |b A⁻¹| of every atom given its row (:func:`hmc_core.uncertainty.maxvol.row_grades`);
* ``monitor``: the whole :func:`hmc_core.uncertainty.grade_monitor` call (basis + grade).

The active set is built (atom mode) from 8 other rattled cells. The competitor is the MTP's own
energy+forces: the ratio monitor / energy_forces is the overhead of grading a saved frame.

    python bench/grade_speed.py --json bench/out/grade_speed.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from ase.build import bulk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchutil import write_json  # noqa: E402

from hmc_core.mtp import per_atom_basis, read_mtp  # noqa: E402
from hmc_core.potentials import ForceField  # noqa: E402
from hmc_core.uncertainty import ActiveSet, grade_monitor  # noqa: E402
from hmc_core.uncertainty.maxvol import row_grades  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def supercell(seed: int, rattle: float = 0.05, repeat: int = 8):
    atoms = bulk("Mo", "bcc", a=3.16, cubic=True).repeat(repeat)
    atoms.rattle(rattle, seed=seed)
    return atoms


def median_time(fn, repeats: int) -> float:
    fn()  # compile / warm up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_level(level: int, repeats: int) -> dict:
    mtp = read_mtp(DATA / "mtp" / f"cubic_level{level:02d}.mtp", species=[42], below_min_dist="allow")
    train = [supercell(seed, rattle=0.1, repeat=3) for seed in range(1, 9)]
    rows = np.concatenate([per_atom_basis(mtp, a.positions, a.cell[:], a.pbc, a.numbers, include_species=True)
                           for a in train])
    active = ActiveSet.from_basis(rows, np.repeat(np.arange(len(train)), len(train[0])), mode="atom")
    atoms = supercell(0)
    n = len(atoms)
    x = atoms.positions.copy()
    ff = ForceField(mtp, atoms.numbers, atoms.cell[:], atoms.pbc, skin=0.3)
    b = per_atom_basis(mtp, x, atoms.cell[:], atoms.pbc, atoms.numbers, include_species=True)
    g = np.empty(n)
    monitor = grade_monitor(mtp, active, atoms.numbers, atoms.cell[:], atoms.pbc)
    out = {
        "level": level,
        "n_basis_columns": int(b.shape[1]),
        "n_atoms": n,
        "energy_forces_us_per_atom": 1e6 * median_time(lambda: ff(x), repeats) / n,
        "basis_us_per_atom": 1e6 * median_time(
            lambda: per_atom_basis(mtp, x, atoms.cell[:], atoms.pbc, atoms.numbers, include_species=True),
            repeats) / n,
        "grade_kernel_us_per_atom": 1e6 * median_time(lambda: row_grades(b, active.inverse, g), repeats) / n,
        "monitor_us_per_atom": 1e6 * median_time(lambda: monitor(x), repeats) / n,
        "max_grade": float(monitor(x)),
        "active_placeholders": active.n_placeholders,
    }
    out["monitor_over_energy_forces"] = out["monitor_us_per_atom"] / out["energy_forces_us_per_atom"]
    out["grade_kernel_over_energy_forces"] = out["grade_kernel_us_per_atom"] / out["energy_forces_us_per_atom"]
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--levels", type=int, nargs="+", default=[10, 16, 20])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--blas-threads", type=int, default=1)
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=args.blas_threads):
        results = [bench_level(level, args.repeats) for level in args.levels]
    print(f"{'level':>5} {'columns':>7} {'E+F µs/atom':>12} {'basis':>8} {'grade kernel':>13} {'monitor':>8} "
          f"{'monitor/E+F':>12} {'kernel/E+F':>11}")
    for r in results:
        print(f"{r['level']:>5} {r['n_basis_columns']:>7} {r['energy_forces_us_per_atom']:12.2f} "
              f"{r['basis_us_per_atom']:8.2f} {r['grade_kernel_us_per_atom']:13.3f} {r['monitor_us_per_atom']:8.2f} "
              f"{r['monitor_over_energy_forces']:12.2f} {r['grade_kernel_over_energy_forces']:11.3f}")
    result = {"levels": results, "structure": "bcc Mo 8x8x8 cubic cells (1024 atoms), rattle 0.05 Å"}
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
