"""Speed of MTP energy+forces: pesflow (Numba) vs motep's C extension, on a rattled 1024-atom bcc Mo cell.

For levels 10, 16 and 20 (the MLIP fixtures in ../shared/data/mtp, cutoff 5 Å) this times one energy +
forces + virial evaluation with a prebuilt neighbour list (median of repeats) and prints µs/atom and the
ratio motep/pesflow. Optionally (``--fit-data DIR``, an mlearn folder) it also times the design-matrix
assembly and the linear fit on ``DIR/training.json`` and reports the design matrix's memory.
motep is optional (``.[bench]``): without it its columns are null.

    python bench/mtp_speed.py --json bench/out/mtp_speed.json [--fit-data ../shared/data/mlearn/Mo]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from ase.build import bulk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from hmc_core.mtp import read_mtp  # noqa: E402
from hmc_core.potentials import ForceField  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def supercell(seed: int = 0):
    atoms = bulk("Mo", "bcc", a=3.16, cubic=True).repeat(8)  # 1024 atoms
    atoms.rattle(0.05, seed=seed)
    return atoms


def time_pesflow(path: Path, atoms, repeats: int) -> float:
    mtp = read_mtp(path, species=[42])
    ff = ForceField(mtp, atoms.numbers, atoms.cell[:], atoms.pbc, skin=0.3)
    x = atoms.positions.copy()
    ff(x)  # compile + build the list
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        ff(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times) / len(atoms) * 1e6


def time_motep(path: Path, atoms, repeats: int) -> float | None:
    try:
        from motep.calculator import MTP as MotepCalculator
        from motep.io.mlip.mtp import read_mtp as motep_read
        data = motep_read(path)
        data.species = [42]
        calc = MotepCalculator(data, engine="cext")
    except Exception as err:  # competitor missing or its C extension not built
        print(f"motep cext unavailable: {err}", file=sys.stderr)
        return None
    a = atoms.copy()
    a.calc = calc
    a.get_forces()
    times = []
    rng = np.random.default_rng(0)
    for _ in range(repeats):
        a.positions = a.positions + rng.normal(0, 1e-6, a.positions.shape)  # force a new evaluation
        t = time.perf_counter()
        a.get_forces()
        times.append(time.perf_counter() - t)
    return statistics.median(times) / len(atoms) * 1e6


def fit_timing(folder: Path, level: int) -> dict:
    from mlearn_data import read_mlearn

    from hmc_core.mtp import MTP
    from hmc_core.mtp.fit import FitSettings, TrainingData, design_matrix, solve_ridge
    from hmc_core.mtp.levels import generate_basis
    ds = read_mlearn(folder / "training.json")
    species = sorted(set(ds["species"].values[ds["species"].values > 0].tolist()))
    mtp = MTP.untrained(generate_basis(level), species, min_dist=1.5, max_dist=5.0)
    data = TrainingData(mtp, ds)
    settings = FitSettings()
    design_matrix(mtp, TrainingData(mtp, ds.isel(config=[0])), settings)  # compile
    t = time.perf_counter()
    a, b, _ = design_matrix(mtp, data, settings)
    t_design = time.perf_counter() - t
    t = time.perf_counter()
    solve_ridge(a, b, settings.l2)
    t_solve = time.perf_counter() - t
    return {"level": level, "n_configs": len(data), "n_atoms": data.n_atoms, "design_shape": list(a.shape),
            "design_seconds": t_design, "solve_seconds": t_solve, "design_matrix_mib": a.nbytes / 2**20}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--levels", type=int, nargs="+", default=[10, 16, 20])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--mtp-dir", type=Path, default=DATA / "mtp")
    parser.add_argument("--fit-data", type=Path, help="mlearn folder for design-matrix / fit timing")
    args = parser.parse_args(argv)
    atoms = supercell()
    rows = {}
    print(f"{'level':>5} {'pesflow µs/atom':>16} {'motep cext µs/atom':>19} {'speed-up':>9}")
    for level in args.levels:
        path = args.mtp_dir / f"cubic_level{level:02d}.mtp"
        ours = time_pesflow(path, atoms, args.repeats)
        ref = time_motep(path, atoms, max(3, args.repeats // 2))
        ratio = ref / ours if ref is not None else None
        rows[str(level)] = {"pesflow_us_per_atom": ours, "motep_cext_us_per_atom": ref, "speedup_vs_motep": ratio}
        ref_text = f"{ref:.2f}" if ref else "n/a"
        ratio_text = f"{ratio:.2f}x" if ratio else "n/a"
        print(f"{level:5d} {ours:16.2f} {ref_text:>19} {ratio_text:>9}")
    out = {"benchmark": "mtp_energy_forces", "n_atoms": len(atoms), "cutoff_A": 5.0, "levels": rows}
    if args.fit_data is not None:
        out["fit"] = fit_timing(args.fit_data, 16)
        print("design matrix (level 16):", json.dumps(out["fit"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
