"""Learned melting point (issue 16 §6): does an MTP learned from Lennard-Jones argon by an active-learning campaign
melt where Lennard-Jones argon itself melts?

Three stages, all in this process through the code paths of the command line:

1. **campaign**: :func:`flows.active_learning.active_learning` (what ``pesflow run`` calls) on a campaign file this
   script writes into ``--out`` (``campaign.toml``): two ``[[system]]`` entries, an Ar fcc crystal and an Ar liquid
   box (builtins ``fcc`` / ``liquid``), both explored by NPT HMC at ``PRESSURE_BAR`` = 1 bar at temperatures
   across 60–110 K (the liquid also at the coexistence runs' ``--melt-temperature``, where the learned potential
   must melt the liquid half; ``--explore-melt 0`` drops it); labels from ``ase:lj`` (its defaults are the ε, σ
   and 3σ cutoff of ``pesflow coexist --element Ar``) on cluster cuts (``[labeling] cluster_cut``) of the selected
   periodic frames; at most ``--max-labels`` labels in all (training labels + the ensemble test sets).
2. **coexist (learned)**: :func:`flows.phase.coexistence` (what ``pesflow coexist --potential final.mtp --species Ar``
   calls) on the campaign's ``final.mtp``.
3. **coexist (direct)**: the same flow with ``element = "Ar"`` and ``tail_correction = False`` (``pesflow coexist
   --element Ar --no-tail-correction``): the same temperatures, box, sweeps, melting temperature and seed.

All three run as Prefect flows on one server started by :func:`flows.server.flow_server`, as the CLI does.

**Stop rule** (issue 16 §5): ``[stopping] ensemble_force_rmse_target`` on the ensemble test set
(``[ensemble_test]``: frames from NPT HMC on the current potential at both systems' state points, cut around
``--ensemble-atoms`` random atoms each and labeled by ``ase:lj``; redrawn when a KS test says the potential's
ensemble moved), next to the label budget, the iteration budget and "no candidate above the selection
threshold". ``ensemble_force_rmse_eV_per_A`` is the final potential's force RMSE on that set (core atoms).

**Labels.** ``n_labels`` counts every labeler call the campaign made: the training labels (starting sets and
cluster cuts) plus every ensemble test set drawn; ``n_training_labels`` and ``n_test_labels`` split it. The
campaign's ``[stopping] max_labels`` is the budget less ``--test-reserve`` labels for the ensemble sets.

**Bar** (``passes_bar``): both brackets closed and consistent, |tm_learned − tm_direct| ≤ 2 % of tm_direct,
``n_labels`` ≤ 300 and the total wall time ≤ 2 h (on 2 cores). ``tm_*_K`` are the bracket midpoints (highest
temperature whose crystal grew, lowest whose crystal melted); with ``--t-step`` 2 K they resolve ±1 K.

**The same model on both sides.** ``ase:lj`` labels are LJ truncated at 3σ and shifted, without the tail
correction that ``pesflow coexist --element Ar`` adds by default (−6.9 meV/atom in fcc Ar, about 3 K of T_m), so
the direct run uses ``--no-tail-correction``: the learned potential is compared with exactly the model it
learned. The full mode's MTP cutoff is that 3σ (10.2 Å): with a 7 Å MTP the learned potential also lacks the
7–10.2 Å cohesion (∫ r⁻⁴ dr: twice the tail beyond 3σ, ≈ 6 K of T_m, three times the 2 % bar), which no fit
to forces of a shorter-ranged model can restore. Clusters are then r_cut + buffer = 12.2 Å in radius
(≈ 160–200 atoms; ``cluster_cut`` ``max_atoms`` is raised to 400), and the 5×5×5-cell boxes (26.5 Å) stay wider
than twice that radius.

Quick mode (``--quick``, a few minutes on a busy 2-core machine) proves the plumbing only: a 5 Å level-6 MTP
from ~40 labels, 30-sweep coexistence runs at three temperatures; its brackets are usually open and its bar is
not expected to hold. Commands (from the repository root; the full run needs the whole 2-core machine for up to
~2 h and has not been run yet):

    python bench/learned_melting.py --quick --json bench/out/learned_melting_quick.json
    python bench/learned_melting.py --json bench/out/learned_melting.json

``--out`` (default ``runs/bench-learned-melting[-quick]``) is replaced on each run; it holds ``campaign.toml``,
the campaign directory ``campaign/``, and ``coexist-learned/`` and ``coexist-direct/`` (the flows' netCDF,
PNG and ``summary.json``). ASE (the labeler) missing is an error, not a skipped row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchutil import write_json  # noqa: E402

PRESSURE_BAR = 1.0
BAR_FRACTION = 0.02
BAR_LABELS = 300
BAR_WALL_S = 7200.0

#: campaign and coexistence settings per mode; every value can be overridden from the command line
MODES = {
    "full": dict(
        mtp_level=8, mtp_cutoff=10.215, buffer=2.0, max_iter=200,
        crystal_repeat=5, liquid_repeat=5, n_start=4, n_test=0, test_rattle=0.15, rattle=0.05,
        explore_temperatures=[60.0, 85.0, 110.0], n_starts=1, n_samples=20, n_steps=10,
        dt=5.0, n_warmup=10, save_every=2, threshold=1.05, break_threshold=5.0, budget=12,
        max_iterations=15, max_labels=BAR_LABELS, force_rmse_target=0.001, test_reserve=40, ensemble_frames=4,
        ensemble_atoms=2, ensemble_samples=20, min_p_value=0.01, direct_tail=0,
        t_min=76.0, t_max=88.0, t_step=2.0, cells=(5, 5, 8), coexist_samples=400, every=20, melt_sweeps=100,
        hold=20, melt_temperature=150.0, explore_melt=1, coexist_steps=20, workers=2, seed=0,
    ),
    "quick": dict(
        mtp_level=6, mtp_cutoff=5.0, buffer=2.0, max_iter=300,
        crystal_repeat=3, liquid_repeat=3, n_start=3, n_test=0, test_rattle=0.15, rattle=0.01,
        explore_temperatures=[60.0, 110.0], n_starts=1, n_samples=6, n_steps=5,
        dt=5.0, n_warmup=2, save_every=1, threshold=1.0, break_threshold=50.0, budget=4,
        max_iterations=8, max_labels=60, force_rmse_target=0.0015, test_reserve=12, ensemble_frames=2,
        ensemble_atoms=1, ensemble_samples=10, min_p_value=0.01, direct_tail=0,
        t_min=64.0, t_max=84.0, t_step=10.0, cells=(4, 4, 8), coexist_samples=30, every=10, melt_sweeps=150,
        hold=5, melt_temperature=240.0, explore_melt=1, coexist_steps=10, workers=2, seed=0,
    ),
}

CAMPAIGN = """\
# written by bench/learned_melting.py ({mode} mode)
name = "learned-melting-{mode}"
seed = {seed}

[[system]]
name = "crystal"
builtin = "fcc"
element = "Ar"
lattice_constant = 5.30
repeat = [{crystal_repeat}, {crystal_repeat}, {crystal_repeat}]
pressure = {pressure}
n_start = {n_start}
n_test = {n_test}
rattle = {rattle}
test_rattle = {test_rattle}

[[system]]
name = "liquid"
builtin = "liquid"
element = "Ar"
density = 0.0213
repeat = [{liquid_repeat}, {liquid_repeat}, {liquid_repeat}]
temperatures = {liquid_temperatures}
pressure = {pressure}
n_start = {n_start}
n_test = {n_test}
rattle = {rattle}
test_rattle = {test_rattle}

[potential]
level = {mtp_level}
cutoff = {mtp_cutoff}
max_iter = {max_iter}

[hmc]
temperatures = {explore_temperatures}
n_starts = {n_starts}
n_samples = {n_samples}
n_steps = {n_steps}
dt = {dt}
n_warmup = {n_warmup}
save_every = {save_every}

[selection]
threshold = {threshold}
break_threshold = {break_threshold}
budget = {budget}

[labeling]
labeler = "ase:lj"
n_workers = {workers}
cluster_cut = {{buffer = {buffer}, max_atoms = 400}}

[ensemble_test]
n_frames = {ensemble_frames}
n_samples = {ensemble_samples}
atoms_per_frame = {ensemble_atoms}
min_p_value = {min_p_value}

[stopping]
max_iterations = {max_iterations}
max_labels = {max_training_labels}
ensemble_force_rmse_target = {force_rmse_target}
stop_when_no_candidates = true
"""


def require_competitors() -> None:
    """ASE is the labeler (the reference potential itself): fail loudly without it."""
    try:
        import ase  # noqa: F401
        from ase.calculators.lj import LennardJones  # noqa: F401
    except ImportError as exc:
        raise SystemExit(f"learned_melting: ASE (the ase:lj labeler) is missing: {exc}") from None


def campaign_text(s: dict, mode: str) -> str:
    """The campaign file: both systems explored by NPT chains at 1 bar at every ``[hmc]`` temperature (the
    crystal superheated, the liquid supercooled at the ends of 60–110 K); the liquid also at the coexistence
    runs' ``melt_temperature`` unless ``explore_melt`` is 0: the learned potential melts the liquid half there, and
    without such labels (quick mode, 5 Å cutoff) that half stayed ~30 % solid-like at 240 K where LJ melts."""
    liquid = list(s["explore_temperatures"]) + ([s["melt_temperature"]] if s["explore_melt"] else [])
    return CAMPAIGN.format(mode=mode, pressure=PRESSURE_BAR, max_training_labels=s["max_labels"] - s["test_reserve"],
                           liquid_temperatures=liquid, **s)


def coexistence_settings(s: dict, **system):
    """The :class:`tasks.phase_settings.CoexistenceSettings` both coexistence runs share (``system``: the
    potential file or the LJ element)."""
    import numpy as np

    from tasks.phase_settings import CoexistenceSettings

    temps = tuple(float(t) for t in np.arange(s["t_min"], s["t_max"] + 1e-9, s["t_step"]))
    return CoexistenceSettings(**system, pressure=PRESSURE_BAR, temperatures=temps, n_cells=tuple(s["cells"]),
                               n_samples=s["coexist_samples"], analyse_every=s["every"], n_melt=s["melt_sweeps"],
                               n_hold=s["hold"], n_steps=s["coexist_steps"], melt_temperature=s["melt_temperature"],
                               seed=s["seed"], n_workers=s["workers"])


def versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("pesflow", "numpy", "numba", "ase", "prefect", "xarray"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    try:
        out["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                           check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        out["git_commit"] = None
    return out


def _coexist(coexistence, settings, run_dir: Path) -> dict:
    """The coexistence flow's summary; a flow that fails (e.g. a learned potential whose crystal melts in the
    bulk stage, or whose liquid half does not melt) is a result: its error, no bracket, and the per-temperature
    outcomes of the runs that finished (``run_dir/runs/*.nc``)."""
    try:
        return coexistence(settings, run_dir=str(run_dir))
    except Exception as exc:  # noqa: BLE001 - recorded in the JSON, the other stage still runs
        import xarray as xr

        runs = []
        for path in sorted((run_dir / "runs").glob("*.nc")):
            with xr.open_dataset(path, engine="h5netcdf") as ds:
                runs.append({k: ds.attrs.get(k) for k in ("temperature", "outcome", "delta_solid_fraction")})
        print(f"coexistence in {run_dir} failed: {exc}", file=sys.stderr)
        return {"error": f"{type(exc).__name__}: {exc}", "bracket": [None, None], "T_mid": None,
                "consistent": False, "runs": runs, "potential": None, "reference_T_m": None}


def run(s: dict, mode: str, out: Path, resume: bool = False) -> dict:
    """The three stages; ``resume``: keep ``out``'s campaign (a finished one answers at once, an interrupted one
    resumes; the campaign settings must be the same) and redo the coexistence runs."""
    from flows.active_learning import active_learning
    from flows.phase import coexistence
    from flows.server import flow_server
    from flows.store import CampaignStore

    if out.exists() and not resume:
        shutil.rmtree(out)
    for stage in ("coexist-learned", "coexist-direct"):
        shutil.rmtree(out / stage, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    config = out / "campaign.toml"
    config.write_text(campaign_text(s, mode))
    wall = {}
    t_all = time.perf_counter()
    with flow_server(announce=False):
        t0 = time.perf_counter()
        campaign = active_learning(config_path=str(config), directory=str(out / "campaign"), ui_plots=False)
        wall["campaign"] = time.perf_counter() - t0
        if not campaign.get("final_potential"):
            raise RuntimeError(f"the campaign wrote no final.mtp: {campaign.get('reason')}")
        learned = coexistence_settings(s, potential=campaign["final_potential"], species=(18,))
        direct = coexistence_settings(s, element="Ar", tail_correction=bool(s["direct_tail"]))
        t0 = time.perf_counter()
        coexist_learned = _coexist(coexistence, learned, out / "coexist-learned")
        wall["coexist_learned"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        coexist_direct = _coexist(coexistence, direct, out / "coexist-direct")
        wall["coexist_direct"] = time.perf_counter() - t0
    wall["total"] = time.perf_counter() - t_all  # includes the Prefect server's start and stop
    store = CampaignStore(out / "campaign")
    n_test = sum(int(store.read_dataset("ensemble_test.nc", it).sizes["config"]) for it in store.iterations()
                 if store.has("ensemble_test.nc", it))
    if store.has("test_set.nc"):
        n_test += int(store.read_dataset("test_set.nc").sizes["config"])
    last = campaign["metrics"][-1] if campaign["metrics"] else {}
    return {"campaign": campaign, "coexist_learned": coexist_learned, "coexist_direct": coexist_direct,
            "learned_settings": learned.summary(), "direct_settings": direct.summary(), "wall_s": wall,
            "n_test": n_test, "last_row": last, "resumed": resume}


def figures(r: dict, s: dict, mode: str, out: Path) -> dict:
    learned, direct = r["coexist_learned"], r["coexist_direct"]
    tl, td = learned["T_mid"], direct["T_mid"]
    n_train = int(r["campaign"]["n_labels"])
    n_labels = n_train + r["n_test"]
    diff = None if tl is None or td is None else tl - td
    diff_pct = None if diff is None else 100.0 * diff / td
    within = diff is not None and abs(diff) <= BAR_FRACTION * td
    consistent = bool(learned["consistent"] and direct["consistent"])
    bar = {"tm_within_2_percent": within, "brackets_closed_and_consistent": consistent and diff is not None,
           "labels_le_300": n_labels <= BAR_LABELS, "wall_le_2h": r["wall_s"]["total"] <= BAR_WALL_S}
    stage_s = {k: round(v, 1) for k, v in (r["campaign"].get("this_run_s") or {}).items()}
    return {
        "benchmark": "learned_melting", "mode": mode,
        "tm_learned_K": tl, "tm_direct_K": td,
        "tm_learned_bracket_K": learned["bracket"], "tm_direct_bracket_K": direct["bracket"],
        "difference_K": diff, "difference_percent": diff_pct,
        "n_labels": n_labels, "n_training_labels": n_train, "n_test_labels": r["n_test"],
        "ensemble_force_rmse_eV_per_A": r["last_row"].get("ensemble_force_rmse_eV_per_A"),
        "stop_rule": (f"[stopping] ensemble_force_rmse_target = {s['force_rmse_target']} eV/Å on the ensemble test set "
                      f"({s['ensemble_frames']} frames per system from NPT HMC on the current potential, "
                      f"{s['ensemble_atoms']} cluster cut(s) per frame), or the label budget ({s['max_labels']} "
                      f"labels less {s['test_reserve']} reserved for ensemble sets), or {s['max_iterations']} label "
                      "rounds, or no explored frame above the selection threshold"),
        "direct_tail_correction": bool(s["direct_tail"]),
        "stop_reason": r["campaign"]["reason"], "iterations": len(r["campaign"]["metrics"]),
        "campaign_resumed": r.get("resumed", False),
        "campaign_iteration_s": round(sum(m.get("iteration_s") or 0.0 for m in r["campaign"]["metrics"]), 1),
        "wall_s": {k: round(v, 1) for k, v in r["wall_s"].items()}, "campaign_stage_s": stage_s,
        **melting_statistics(learned, direct),
        "passes_bar": all(bar.values()), "bar": bar,
        "bar_definition": ("|tm_learned - tm_direct| <= 2 % of tm_direct, both brackets closed and consistent, "
                           "n_labels <= 300, total wall <= 2 h on 2 cores"),
        "bar_expected_to_hold": mode == "full",
        "coexist_runs": {"learned": learned["runs"], "direct": direct["runs"]},
        "errors": {k: v["error"] for k, v in (("learned", learned), ("direct", direct)) if "error" in v},
        "direct_potential": direct.get("potential"), "learned_potential": learned.get("potential"),
        "reference_T_m_direct_K": direct.get("reference_T_m"),
        "settings": {**s, "pressure_bar": PRESSURE_BAR, "campaign_file": (out / "campaign.toml").read_text(),
                     "coexist_learned": r["learned_settings"], "coexist_direct": r["direct_settings"]},
        "output": str(out), "versions": versions(), "cpu": os.cpu_count(), "load_average": os.getloadavg(),
    }


def melting_statistics(learned: dict, direct: dict) -> dict:
    """The coexistence flows' statistical T_m (zero crossing of the interface velocity with its interval,
    ``summary.json`` ``melting_point``; issue 22 §1) for both potentials, where the flow gives one."""
    out = {}
    for name, summary in (("learned", learned), ("direct", direct)):
        mp = (summary or {}).get("melting_point") or {}
        out[f"tm_{name}_velocity_K"] = mp.get("T_m")
        out[f"tm_{name}_velocity_ci_K"] = mp.get("ci")
        out[f"tm_{name}_velocity_confidence"] = mp.get("level")
    tl, td = out["tm_learned_velocity_K"], out["tm_direct_velocity_K"]
    out["velocity_difference_percent"] = None if tl is None or td is None else 100.0 * (tl - td) / td
    return out


def reanalyse(path: Path) -> dict:
    """A finished run's JSON with the statistical T_m of its coexistence outputs (``output`` folder) added."""
    f = json.loads(path.read_text())
    out = Path(f["output"])
    summaries = {name: json.loads((out / f"coexist-{name}" / "summary.json").read_text())
                 if (out / f"coexist-{name}" / "summary.json").exists() else {} for name in ("learned", "direct")}
    f.update(melting_statistics(summaries["learned"], summaries["direct"]))
    return f


def print_table(f: dict) -> None:
    def k(v, fmt="{:.1f}"):
        return "n/a" if v is None else fmt.format(v)

    lo_d, hi_d = f["tm_direct_bracket_K"]
    lo_l, hi_l = f["tm_learned_bracket_K"]
    w = f["wall_s"]
    print(f"learned melting point of LJ argon at {PRESSURE_BAR:g} bar ({f['mode']} mode; load "
          f"{f['load_average'][0]:.1f})")
    print(f"{'':24s} {'bracket (K)':>16s} {'T_m (K)':>8s} {'wall (s)':>9s}")
    print(f"{'LJ direct':24s} {k(lo_d) + '–' + k(hi_d):>16s} {k(f['tm_direct_K']):>8s} "
          f"{k(w['coexist_direct']):>9s}")
    print(f"{'learned MTP':24s} {k(lo_l) + '–' + k(hi_l):>16s} {k(f['tm_learned_K']):>8s} "
          f"{k(w['coexist_learned']):>9s}")
    print(f"{'learned − direct':24s} {'':>16s} {k(f['difference_K'], '{:+.1f}'):>8s}  "
          f"({k(f['difference_percent'], '{:+.2f}')} %, bar ±{100 * BAR_FRACTION:g} %)")
    for name in ("direct", "learned"):
        ci = f.get(f"tm_{name}_velocity_ci_K") or [None, None]
        print(f"{'v(T) = 0, ' + name:24s} {k(ci[0], '{:.2f}') + '–' + k(ci[1], '{:.2f}'):>16s} "
              f"{k(f.get(f'tm_{name}_velocity_K'), '{:.2f}'):>8s}  (interface-velocity zero crossing, interval)")
    print(f"campaign: {f['n_labels']} labels ({f['n_training_labels']} training + {f['n_test_labels']} test; "
          f"bar ≤ {BAR_LABELS}), {f['iterations']} iteration rows, ensemble force RMSE "
          f"{k(f['ensemble_force_rmse_eV_per_A'], '{:.4g}')} eV/Å, {k(w['campaign'])} s; stop: {f['stop_reason']}")
    print(f"wall total {k(w['total'])} s (bar ≤ {BAR_WALL_S:.0f} s); passes bar: {f['passes_bar']} "
          f"{json.dumps(f['bar'])}" + ("" if f["bar_expected_to_hold"] else " (quick mode: not expected to hold)"))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny settings that prove the plumbing (minutes)")
    ap.add_argument("--out", type=Path, help="output folder, replaced (default runs/bench-learned-melting[-quick])")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--resume", action="store_true",
                    help="keep --out's campaign (same campaign settings) and redo the coexistence runs")
    ap.add_argument("--reanalyse", type=Path, metavar="JSON",
                    help="add the coexistence runs' statistical T_m to a finished run's JSON (no new runs)")
    for key, value in MODES["full"].items():
        if isinstance(value, list):
            ap.add_argument(f"--{key.replace('_', '-')}", type=float, nargs="+")
        elif isinstance(value, tuple):
            ap.add_argument(f"--{key.replace('_', '-')}", type=int, nargs=3)
        else:
            ap.add_argument(f"--{key.replace('_', '-')}", type=type(value))
    args = ap.parse_args(argv)
    if args.reanalyse is not None:
        result = reanalyse(args.reanalyse)
        print_table(result)
        write_json(args.json or args.reanalyse, result)
        return result
    mode = "quick" if args.quick else "full"
    s = dict(MODES[mode])
    s.update({key: getattr(args, key) for key in s if getattr(args, key) is not None})
    s["cells"] = list(s["cells"])
    require_competitors()
    out = args.out or ROOT / "runs" / ("bench-learned-melting" + ("-quick" if args.quick else ""))
    result = figures(run(s, mode, out, args.resume), s, mode, out)
    print_table(result)
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
