"""Accuracy of a fitted MTP on an mlearn data set: fit on DIR/training.json, report on DIR/test.json.

Reference: the MTP row of Zuo et al., J. Phys. Chem. A 124, 731 (2020) (test-set MAEs; see the closing
note of issue 3 for the numbers and their source). Energies and forces are fitted (stresses are not read).

    python bench/mtp_accuracy.py --data ../shared/data/mlearn/Mo --json bench/out/mtp_accuracy_Mo.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchutil import write_json  # noqa: E402
from mlearn_data import read_mlearn  # noqa: E402

from hmc_core.mtp.fit import FitSettings, error_report  # noqa: E402
from tasks.fit import fit_potential  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with training.json and test.json")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--level", type=int, default=16)
    parser.add_argument("--cutoff", type=float, default=5.0, help="max_dist (Å)")
    parser.add_argument("--iterations", type=int, default=150, help="L-BFGS-B iterations of the full fit")
    parser.add_argument("--energy-weight", type=float, default=1.0)
    parser.add_argument("--force-weight", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="configurations evaluated concurrently")
    parser.add_argument("--out-mtp", type=Path, help="write the fitted potential (.mtp)")
    args = parser.parse_args(argv)
    train = read_mlearn(args.data / "training.json")
    test = read_mlearn(args.data / "test.json")
    settings = FitSettings(energy_weight=args.energy_weight, force_weight=args.force_weight,
                           max_iter=args.iterations, n_threads=args.threads)
    t0 = time.perf_counter()
    mtp, report = fit_potential(train, level=args.level, max_dist=args.cutoff, settings=settings,
                                full=args.iterations > 0, seed=args.seed, out=args.out_mtp, verbose=True)
    fit_seconds = time.perf_counter() - t0
    test_errors = error_report(mtp, test)
    result = {
        "data": str(args.data),
        "level": args.level,
        "n_basis": mtp.n_basis,
        "n_parameters": report["n_parameters"],
        "cutoff_A": args.cutoff,
        "min_dist_A": mtp.min_dist,
        "iterations": report["optimizer"].get("iterations", 0),
        "fit_seconds": fit_seconds,
        "energy_mae_mev_per_atom": test_errors["all"]["energy_mev_per_atom"]["mae"],
        "force_mae_ev_per_A": test_errors["all"]["forces_ev_per_A"]["mae"],
        "energy_rmse_mev_per_atom": test_errors["all"]["energy_mev_per_atom"]["rmse"],
        "force_rmse_ev_per_A": test_errors["all"]["forces_ev_per_A"]["rmse"],
        "train_energy_mae_mev_per_atom": report["train_errors"]["all"]["energy_mev_per_atom"]["mae"],
        "train_force_mae_ev_per_A": report["train_errors"]["all"]["forces_ev_per_A"]["mae"],
        "test_by_group": test_errors.get("groups", {}),
    }
    print(f"{args.data.name}: level {args.level} ({mtp.n_basis} basis functions, {report['n_parameters']} parameters), "
          f"fit {fit_seconds:.0f} s")
    print(f"  test  energy MAE {result['energy_mae_mev_per_atom']:.2f} meV/atom, force MAE "
          f"{result['force_mae_ev_per_A']:.4f} eV/Å")
    print(f"  train energy MAE {result['train_energy_mae_mev_per_atom']:.2f} meV/atom, force MAE "
          f"{result['train_force_mae_ev_per_A']:.4f} eV/Å")
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
