"""What a campaign shows its users: the metrics table (Prefect table artifact and console), the per-iteration
markdown summary, and the summary of a campaign directory. No computation happens here."""

from __future__ import annotations

import re

import numpy as np

from flows.store import CampaignStore
from hmc_core.mtp.fit import usable_labels

STAGE_TIMES = ("fit_s", "explore_s", "select_s", "label_s")
#: metrics columns in the order a user reads them: labels, test errors, candidates, stop reason, then the rest
TABLE_COLUMNS = ("n_labels", "test_energy_rmse_meV_per_atom", "test_force_rmse_eV_per_A",
                 "ensemble_energy_rmse_meV_per_atom", "ensemble_force_rmse_eV_per_A", "ensemble_drawn_at",
                 "ensemble_n", "ensemble_label_s", "threshold_gamma", "calibration_b",
                 "calibration_heldout_coverage_95", "n_above_threshold",
                 "n_selected", "n_new_labels", "n_failed", "stop_reason", "max_grade", "n_pool", "chains_stopped",
                 "acceptance", "fit_capped", *STAGE_TIMES, "iteration_s")


def system_columns(columns) -> list[str]:
    """The per-system metrics columns (``<system>.<column>``, :func:`flows.campaign_systems.per_system_errors`)
    among ``columns``, in their order."""
    return [c for c in columns if "." in str(c)]


def system_names(columns) -> list[str]:
    """The systems that have per-system metrics columns, in order of first appearance."""
    return list(dict.fromkeys(c.split(".", 1)[0] for c in system_columns(columns)))


def artifact_key(name: str, what: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{name}-{what}".lower()).strip("-")


def metrics_table(metrics) -> list[dict]:
    """Rows of the metrics dataset as JSON-friendly dicts (for the Prefect table artifact), columns in
    :data:`TABLE_COLUMNS` order, then the per-system columns (``<system>.<column>``); missing values are None,
    floats rounded to 4 significant figures."""
    rows = []
    for i in metrics["iteration"].values:
        row = {"iteration": int(i)}
        for c in (*TABLE_COLUMNS, *system_columns(metrics.data_vars)):
            if c in metrics:
                v = metrics[c].sel(iteration=i).item()
                if isinstance(v, float):
                    v = None if not np.isfinite(v) else float(f"{v:.4g}")
                row[c] = v
        rows.append(row)
    return rows


def iteration_markdown(name: str, it: int, row: dict, threshold: float, break_threshold: float) -> str:
    """Markdown summary of one iteration (Prefect artifact)."""
    def f(key, fmt="{:.4g}"):
        v = row.get(key)
        return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else fmt.format(v)

    lines = [f"# {name}: iteration {it}", "",
             f"- labels used in the fit: **{f('n_labels', '{:.0f}')}**; new labels this iteration: "
             f"{f('n_new_labels', '{:.0f}')} ({f('n_failed', '{:.0f}')} failed)",
             f"- held-out (test) errors: energy RMSE {f('test_energy_rmse_meV_per_atom')} meV/atom, force RMSE "
             f"{f('test_force_rmse_eV_per_A')} eV/Å",
             *([f"- ensemble test set ({f('ensemble_n', '{:.0f}')} configurations drawn at iteration "
                f"{f('ensemble_drawn_at', '{:.0f}')}, labeled in {f('ensemble_label_s', '{:.1f}')} s): energy RMSE "
                f"{f('ensemble_energy_rmse_meV_per_atom')} meV/atom, force RMSE {f('ensemble_force_rmse_eV_per_A')} "
                "eV/Å"] if "ensemble_force_rmse_eV_per_A" in row else []),
             f"- exploration: {f('n_chains', '{:.0f}')} HMC chains, {f('n_pool', '{:.0f}')} frames, "
             f"{f('chains_stopped', '{:.0f}')} stopped at grade > {break_threshold}, "
             f"acceptance {f('acceptance', '{:.2f}')}, max grade {f('max_grade')}",
             f"- selection: {f('n_above_threshold', '{:.0f}')} frames above grade {threshold}, "
             f"{f('n_selected', '{:.0f}')} selected",
             *(f"- system {n}: {f(n + '.n_labels', '{:.0f}')} labels, test errors: energy RMSE "
               f"{f(n + '.test_energy_rmse_meV_per_atom')} meV/atom, force RMSE {f(n + '.test_force_rmse_eV_per_A')} "
               "eV/Å" for n in system_names(row)),
             "- wall time (s): " + ", ".join(f"{k[:-2]} {f(k, '{:.1f}')}" for k in STAGE_TIMES),
             ]
    if row.get("fit_capped"):
        lines.append("- **warning**: the fit stopped at its iteration cap ([potential] max_iter) before converging")
    if row.get("stop_reason"):
        lines.append(f"- **stopped**: {row['stop_reason']}")
    return "\n".join(lines) + "\n"


def summarize(store: CampaignStore) -> dict:
    """Summary of a campaign directory: stop reason, iteration rows, label counts, final potential path."""
    metrics = store.read_metrics()
    labels = store.read_labels()
    done = store.read_json("DONE.json") if store.done_path.exists() else {}
    return {"directory": str(store.root), "reason": done.get("reason"), "finished": bool(done),
            "n_labels": 0 if labels is None else int(labels.sizes["config"]),
            "n_ok_labels": 0 if labels is None else int(usable_labels(labels).sizes["config"]),
            "final_potential": str(store.path("final.mtp")) if store.path("final.mtp").exists() else None,
            "metrics": [] if metrics is None else metrics_table(metrics)}
