"""Bias of the unadjusted samplers in ⟨U⟩ versus the time step, against exact (Metropolis) HMC.

System: 108-atom Lennard-Jones fluid, ρ* = 0.8442, T* = 1.5, rc = 2.5σ (shifted), periodic. Reference:
Metropolis-adjusted HMC (velocity Verlet, dt = 0.004τ, 10 steps). Compared: unadjusted HMC
(``HMCConfig(metropolis=False)``, 10 steps) and BAOAB Langevin (γ = 1/τ) at several dt, each with the
same number of force evaluations. Reported per atom: ⟨U⟩/N, its standard error from the ESS
(``hmc_core.diagnostics``), and the bias relative to the reference.

    python bench/unadjusted_bias.py --evaluations 40000 --json bench/out/unadjusted_bias.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hmc_core.diagnostics import effective_sample_size  # noqa: E402
from hmc_core.hmc import HMCConfig, HMCSampler, run_chain  # noqa: E402
from hmc_core.potentials import ForceField, LennardJones  # noqa: E402
from hmc_core.unadjusted import LangevinConfig, run_langevin  # noqa: E402

DENSITY, TEMPERATURE, N_CELLS = 0.8442, 1.5, 3


def fcc():
    a = (4.0 / DENSITY) ** (1.0 / 3.0)
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    grid = np.stack(np.meshgrid(*[np.arange(N_CELLS)] * 3, indexing="ij"), -1).reshape(-1, 3)
    return (grid[:, None, :] + basis[None]).reshape(-1, 3) * a, np.eye(3) * a * N_CELLS


def forcefield(cell):
    return ForceField(LennardJones(cutoff_sigma=2.5, shift=True), np.ones(4 * N_CELLS**3, int), cell, (1, 1, 1))


def stats(u: np.ndarray, n: int) -> dict:
    u = u[len(u) // 5:] / n
    ess = effective_sample_size(u)
    return {"mean_U_per_atom": float(u.mean()), "stderr": float(u.std(ddof=1) / np.sqrt(ess)), "ess": float(ess)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evaluations", type=int, default=40_000, help="force evaluations per run")
    ap.add_argument("--dts", type=float, nargs="+", default=[0.004, 0.008, 0.012, 0.016, 0.02])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    x0, cell = fcc()
    n = len(x0)
    # melt the lattice first (same start for every run)
    melt = run_langevin(forcefield(cell), x0, LangevinConfig(TEMPERATURE, 0.004, 1.0, "lj", 100), 2000, seed=9,
                        masses=np.ones(n), save_frames=False)
    start = melt.positions
    n_traj = args.evaluations // 10
    ref = run_chain(HMCSampler(forcefield(cell), HMCConfig(TEMPERATURE, 0.004, 10, units="lj", jitter_dt=0.2)),
                    start, n_traj, seed=1)
    rows = {"reference": {"method": "Metropolis HMC", "dt": 0.004, **stats(ref.potential_energy, n),
                          "acceptance": float(ref.accepted.mean())}}
    for dt in args.dts:
        u = run_chain(HMCSampler(forcefield(cell), HMCConfig(TEMPERATURE, dt, 10, units="lj", jitter_dt=0.2,
                                                             metropolis=False)), start, n_traj, seed=2)
        rows[f"uhmc_{dt}"] = {"method": "unadjusted HMC", "dt": dt, **stats(u.potential_energy, n),
                              "would_accept": float(u.accept_prob.mean())}
        lg = run_langevin(forcefield(cell), start, LangevinConfig(TEMPERATURE, dt, 1.0, "lj", 10), args.evaluations,
                          seed=3, masses=np.ones(n), save_frames=False)
        rows[f"baoab_{dt}"] = {"method": "BAOAB Langevin", "dt": dt, **stats(lg.potential_energy, n)}
    ref_u, ref_e = rows["reference"]["mean_U_per_atom"], rows["reference"]["stderr"]
    print(f"LJ fluid N={n}, ρ*={DENSITY}, T*={TEMPERATURE}; {args.evaluations} force evaluations per run")
    print(f"{'method':<18}{'dt':>7}{'⟨U⟩/N':>10}{'±':>8}{'bias':>9}{'bias/σ':>8}")
    for r in rows.values():
        r["bias"] = r["mean_U_per_atom"] - ref_u
        sigma = float(np.hypot(r["stderr"], ref_e))
        r["bias_over_sigma"] = r["bias"] / sigma if r is not rows["reference"] else 0.0
        print(f"{r['method']:<18}{r['dt']:7.3f}{r['mean_U_per_atom']:10.4g}{r['stderr']:8.2g}{r['bias']:9.4g}"
              f"{r['bias_over_sigma']:8.2g}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
