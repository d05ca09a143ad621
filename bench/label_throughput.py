"""Label throughput: pesflow's PySCF label stage vs raw PySCF on a 10-molecule batch.

Batch (in this order): 4 perturbed waters, 4 perturbed ethanols, 2 perturbed Ar₁₃ icosahedra (every atom
displaced by a Gaussian of σ = 0.05 Å, fixed seed). Default method: PBE-D3(BJ)/def2-SVP with density fitting
(the label stage's default GGA plus the dispersion Ar needs), conv_tol 1e-9 Ha, grid level 3, forces with
grid response. Each label is an energy and analytic forces.

Runs, all in this one process or its spawned workers, in this order:
  raw      PySCF called by hand (same method, same threads), cold guesses, serial — the competitor
  cold     pesflow serial, warm starts off            → overhead vs raw, in wall time and in this process's
           CPU time (the CPU figure is the robust one on a shared, loaded machine)
  warm     pesflow serial, warm starts on (density of the nearest earlier geometry of the same molecule)
  parallel pesflow, ``--workers`` spawned processes × 1 thread, warm starts on (worker start-up included)
  cached   pesflow again with the cache written by a cached run: no SCF at all

    python bench/label_throughput.py [--json PATH] [--basis def2-svp] [--quick]

``--quick`` runs HF/STO-3G (a smoke test in seconds, not the reported figures).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning (set before PySCF loads its OpenMP runtime), as in the workers.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from benchutil import write_json

ROOT = Path(__file__).resolve().parents[1]
SIGMA = 0.05  # Å, Gaussian displacement of every atom


def batch():
    """The 10 configurations as a list of ASE Atoms."""
    from ase.build import molecule
    from ase.cluster import Icosahedron

    rng = np.random.default_rng(20261125)
    bases = [molecule("H2O")] * 4 + [molecule("CH3CH2OH")] * 4 + [Icosahedron("Ar", 2)] * 2
    out = []
    for base in bases:
        atoms = base.copy()
        atoms.positions += rng.normal(0.0, SIGMA, atoms.positions.shape)
        atoms.pbc = False
        atoms.cell = np.zeros((3, 3))
        out.append(atoms)
    return out


def raw_pyscf(atoms_list, settings, threads: int) -> dict:
    """The competitor: PySCF by hand, one label after the other. Returns wall seconds and SCF cycles."""
    from pyscf import dft, gto, lib, scf

    lib.num_threads(threads)
    cycles = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for atoms in atoms_list:
        mol = gto.M(atom=[(s, tuple(p)) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions, strict=True)],
                    basis=settings.basis, unit="Angstrom", verbose=0, max_memory=settings.max_memory)
        if settings.method == "dft":
            mf = dft.RKS(mol, xc=settings.functional)
            mf.grids.level = settings.grid_level
        else:
            mf = scf.RHF(mol)
        if settings.dispersion:
            mf.disp = settings.dispersion
        if settings.density_fit:
            mf = mf.density_fit()
        mf.conv_tol = settings.conv_tol
        mf.verbose = 0
        mf.kernel()
        cycles += mf.cycles
        grad = mf.nuc_grad_method()
        if settings.method == "dft":
            grad.grid_response = settings.grid_response
        grad.kernel()
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0, "scf_cycles": int(cycles)}


def timed(label_configurations, configs, settings, **kwargs) -> tuple[float, object, float]:
    """(wall s, labels, CPU s of this process — all threads; spawned workers not included)."""
    t0, c0 = time.perf_counter(), time.process_time()
    ds = label_configurations(configs, settings, **kwargs)
    return time.perf_counter() - t0, ds, time.process_time() - c0


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--basis", default="def2-svp")
    parser.add_argument("--functional", default="pbe")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="HF/STO-3G smoke test")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from hmc_core.configurations import from_atoms
    from tasks.label import LabelSettings, label_configurations

    cores = len(os.sched_getaffinity(0))
    if args.quick:
        settings = LabelSettings(method="hf", basis="sto-3g", density_fit=False, dispersion="d3bj")
    else:
        settings = LabelSettings(method="dft", functional=args.functional, basis=args.basis, density_fit=True,
                                 dispersion="d3bj")
    serial_threads = cores
    serial = settings.model_copy(update={"threads_per_worker": serial_threads})
    atoms = batch()
    configs = from_atoms(atoms)
    n = len(atoms)
    method = (f"{settings.method.upper()}" + (f"-{settings.functional.upper()}" if settings.method == "dft" else "")
              + f"-D3(BJ)/{settings.basis}" + ("/DF" if settings.density_fit else ""))
    print(f"{n} labels ({method}), {cores} cores; serial runs use {serial_threads} threads, parallel "
          f"{args.workers} workers × {max(1, cores // args.workers)} thread(s)", flush=True)

    # Warm-up of both code paths (imports, first-call costs) on a water molecule, untimed.
    raw_pyscf(atoms[:1], settings, serial_threads)
    label_configurations(from_atoms(atoms[:1]), serial.model_copy(update={"warm_start": False}))

    raw = raw_pyscf(atoms, settings, serial_threads)
    print(f"raw PySCF      {raw['seconds']:8.1f} s", flush=True)
    t_cold, cold, cpu_cold = timed(label_configurations, configs, serial.model_copy(update={"warm_start": False}))
    print(f"pesflow cold   {t_cold:8.1f} s", flush=True)
    t_warm, warm, cpu_warm = timed(label_configurations, configs, serial)
    print(f"pesflow warm   {t_warm:8.1f} s", flush=True)
    with tempfile.TemporaryDirectory() as cache:
        t_par, par, _ = timed(label_configurations, configs, settings.model_copy(update={"threads_per_worker": None}),
                           cache_dir=cache, n_workers=args.workers)
        print(f"pesflow ×{args.workers}     {t_par:8.1f} s", flush=True)
        t_cached, cached, _ = timed(label_configurations, configs, settings, cache_dir=cache)
    assert (cold["status"].values == "ok").all() and (warm["status"].values == "ok").all()
    assert (par["status"].values == "ok").all() and cached["cache_hit"].values.all()
    max_de = float(np.abs(par["energy"].values - cold["energy"].values).max())
    max_df = float(np.nanmax(np.abs(par["forces"].values - cold["forces"].values)))
    in_labels = float(cold["wall_time"].values.sum())

    per_hour = lambda seconds: 3600.0 * n / seconds  # noqa: E731
    result = {
        "method": method,
        "n_labels": n,
        "cores": cores,
        "serial_threads": serial_threads,
        "workers": args.workers,
        "labels_per_hour_raw_pyscf": per_hour(raw["seconds"]),
        "labels_per_hour_serial_cold": per_hour(t_cold),
        "labels_per_hour_serial": per_hour(t_warm),
        "labels_per_hour_parallel": per_hour(t_par),
        "labels_per_hour_cached": per_hour(t_cached),
        "seconds": {"raw": raw["seconds"], "cold": t_cold, "warm": t_warm, "parallel": t_par, "cached": t_cached},
        "scf_cycles_raw": raw["scf_cycles"],
        "scf_cycles_cold": int(cold["scf_cycles"].values.sum()),
        "scf_cycles_warm": int(warm["scf_cycles"].values.sum()),
        "warm_started": int(warm["warm_start"].values.sum()),
        "overhead_fraction": (t_cold - raw["seconds"]) / t_cold,
        "overhead_fraction_cpu": (cpu_cold - raw["cpu_seconds"]) / cpu_cold,
        "cpu_seconds": {"raw": raw["cpu_seconds"], "cold": cpu_cold, "warm": cpu_warm},
        "overhead_fraction_outside_labels": (t_cold - in_labels) / t_cold,
        "parallel_vs_serial_max_abs_energy_ev": max_de,
        "parallel_vs_serial_max_abs_force_ev_per_a": max_df,
        "per_config": [{"formula": a.get_chemical_formula(), "cycles_cold": int(c), "cycles_warm": int(w),
                        "seconds_cold": float(tc), "seconds_warm": float(tw)}
                       for a, c, w, tc, tw in zip(atoms, cold["scf_cycles"].values, warm["scf_cycles"].values,
                                                  cold["wall_time"].values, warm["wall_time"].values, strict=True)],
    }
    rows = [("raw PySCF (competitor)", raw["seconds"], raw["scf_cycles"]),
            ("pesflow serial, cold", t_cold, result["scf_cycles_cold"]),
            ("pesflow serial, warm", t_warm, result["scf_cycles_warm"]),
            (f"pesflow {args.workers} workers, warm", t_par, int(par["scf_cycles"].values.sum())),
            ("pesflow, all cached", t_cached, 0)]
    print(f"\n{'run':32s} {'wall s':>8s} {'labels/h':>9s} {'vs raw':>7s} {'SCF cycles':>10s}")
    for name, seconds, cyc in rows:
        print(f"{name:32s} {seconds:8.1f} {per_hour(seconds):9.0f} {raw['seconds'] / seconds:7.2f} {cyc:10d}")
    print(f"overhead vs raw PySCF: {100 * result['overhead_fraction']:.1f} % of wall time, "
          f"{100 * result['overhead_fraction_cpu']:.1f} % of CPU time "
          f"(outside the per-label PySCF calls: {100 * result['overhead_fraction_outside_labels']:.2f} %); "
          f"parallel vs serial: |ΔE| ≤ {max_de:.1e} eV, |ΔF| ≤ {max_df:.1e} eV/Å")
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
