"""Prefect flow ``free_energy_melting``: T_m where the Gibbs free energies of crystal and liquid cross (issue 22 §2).

One task (:data:`tasks.free_energy.free_energy_task`: NPT runs of both phases, Frenkel–Ladd, the liquid's
ideal-gas path, Gibbs–Helmholtz, bootstrap); the run directory gets ``summary.json`` (T_m, its interval, both
phases' free energies, enthalpies and volumes, the settings, the published LJ melting temperatures) and
``free_energy.png`` (βΔG/N against T with the crossing). This module only wires and reports.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.phase import NO_REFERENCE, published_melting, reference_melting_temperature
from tasks.free_energy import FreeEnergySettings, free_energy_task


def _clean(v):
    """JSON-ready: numpy to Python, NaN/inf to None, recursively."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_clean(x) for x in v]
    v = v.item() if hasattr(v, "item") else v
    return None if isinstance(v, float) and not math.isfinite(v) else v


def plot_free_energy(result: dict, path: Path, unit: str) -> Path:
    """βΔG/N = β(G_s − G_l)/N against T, with T_m and its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2), constrained_layout=True)
    ax.plot(result["temperatures"], result["delta_g"], "o-", color="k", label="β(G_s − G_l)/N")
    ax.axhline(0, color="grey", lw=0.8)
    if result["T_m"] is not None:
        ax.axvline(result["T_m"], color="C3", label=f"T_m = {result['T_m']:.4g}")
        lo, hi = result["ci"]
        if lo is not None and hi is not None:
            ax.axvspan(lo, hi, color="C3", alpha=0.2, label=f"{100 * result['level']:g} % [{lo:.4g}, {hi:.4g}]")
    ax.set_xlabel(f"temperature ({unit})")
    ax.set_ylabel("β ΔG per atom (k_B T)")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@flow(name="free-energy-melting", flow_run_name="free-energy-{settings.element}-P{settings.pressure:g}",
      persist_result=False, log_prints=False)
def free_energy_melting(settings: FreeEnergySettings, run_dir: str = "runs/free_energy") -> dict:
    """T_m from free energies (settings: :class:`tasks.free_energy.FreeEnergySettings`, validated by the CLI).
    Returns the summary (also ``run_dir/summary.json``)."""
    s = settings
    system = s.system()
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    log = get_run_logger()
    log.info("free energies of fcc crystal and liquid, %d atoms each, around T0 = %g", 4 * s.n_cells**3, s.t_guess)
    result = _clean(free_energy_task(s))
    summary = {
        "settings": s.summary(), **result, "potential": system.describe()["potential"],
        "reference_T_m": _clean(reference_melting_temperature(system, s.pressure)),
        "reference": ("Mastny & de Pablo (2007) triple point / Agrawal & Kofke (1995) melting line "
                      "(full potential, N → ∞)") if system.is_lennard_jones else NO_REFERENCE,
        **_clean(published_melting(system, s.pressure)),
        "conventions": "βF/N and βG/N in k_B T per atom with Λ = 1 length unit (cancels at coexistence)",
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    unit = "T*" if system.units == "lj" else "K"
    plot_free_energy(summary, out / "free_energy.png", unit)
    create_markdown_artifact(key="free-energy-melting", markdown=(
        f"T_m = {summary['T_m']} ({100 * s.confidence:g} % interval {summary['ci']}), "
        f"published {summary['reference_T_m']}; {summary['cpu_s']:.0f} CPU s"))
    log.info("T_m = %s, interval %s (published %s)", summary["T_m"], summary["ci"], summary["reference_T_m"])
    return summary
