"""The active-learning campaign as one Prefect flow, ``active_learning``.

Iteration ``i`` (all results in the campaign directory, see :mod:`flows.store`):

1. **fit** the MTP on every successful label (``tasks.fit``); errors on the held-out test set;
2. **explore**: HMC chains on that MTP, one Prefect task per (starting structure, temperature), run in
   parallel; a chain stops as soon as a frame's extrapolation grade exceeds the break threshold;
3. **select** at most ``budget`` candidates with grade above the threshold (``tasks.select``, greedy MaxVol);
4. **label** them with PySCF (``tasks.label``) in parallel; failures are recorded and never fitted;
5. **record** metrics (metrics.nc) and Prefect artifacts (metrics table, markdown summary, progress).

It stops when an iteration finds no candidate above the threshold, the held-out force RMSE reaches its target,
the label budget is spent, or after ``max_iterations`` label rounds (then a last fit on all labels).
Before iteration 0 the starting set (random displacements of the system) and the held-out test set are labeled.

Every stage writes its outputs atomically and then a completion marker; a campaign killed at any point resumes
from the last marker when started again with the same command, and the label cache answers every PySCF
calculation that had finished. Stage functions live in ``tasks/``; this module only wires them.
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path

import numpy as np
import xarray as xr
from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from flows.config import CampaignConfig, load_config
from flows.store import CampaignStore
from flows.systems import load_system, rattled_set
from hmc_core.configurations import concat, config_arrays

STAGE_TIMES = ("fit_s", "explore_s", "select_s", "label_s")


def named(stage_task, name: str):
    """``stage_task`` with a readable run name for the UI and Prefect's result caching off: the campaign store
    and the label cache make resumes exact, and hashing large datasets (or the grade monitor, a closure)
    as cache keys would only cost time."""
    from prefect.cache_policies import NO_CACHE

    return stage_task.with_options(task_run_name=name, cache_policy=NO_CACHE)


# ---- helpers ----------------------------------------------------------------------------------------------
def artifact_key(name: str, what: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{name}-{what}".lower()).strip("-")


def ok_labels(labels: xr.Dataset) -> xr.Dataset:
    """The successful labels (status ``ok`` and finite energy): the only ones that enter fits."""
    good = np.isfinite(labels["energy"].values)
    if "status" in labels:
        good &= labels["status"].values.astype(str) == "ok"
    return labels.isel(config=np.flatnonzero(good))


def prediction_errors(potential, labels: xr.Dataset) -> dict[str, float]:
    """Energy (meV/atom) and force (eV/Å) MAE/RMSE of ``potential`` against ``labels`` (successful ones).
    Atoms closer than the MTP's ``min_dist`` are extrapolated (as MLIP does), not refused."""
    labels = ok_labels(labels)
    if getattr(potential, "below_min_dist", "allow") != "allow":
        potential = potential.copy()
        potential.below_min_dist = "allow"
    de, df = [], []
    for k in range(labels.sizes["config"]):
        x, z, cell, pbc = config_arrays(labels, k)
        pred = potential.evaluate(x, z, cell, pbc)
        de.append((pred["energy"] - float(labels["energy"].values[k])) / len(z) * 1000.0)
        df.append((pred["forces"] - labels["forces"].values[k, : len(z)]).ravel())
    if not de:
        return {k: float("nan") for k in ("energy_mae_meV_per_atom", "energy_rmse_meV_per_atom",
                                          "force_mae_eV_per_A", "force_rmse_eV_per_A")}
    de, df = np.asarray(de), np.concatenate(df)
    return {"energy_mae_meV_per_atom": float(np.mean(np.abs(de))),
            "energy_rmse_meV_per_atom": float(np.sqrt(np.mean(de**2))),
            "force_mae_eV_per_A": float(np.mean(np.abs(df))),
            "force_rmse_eV_per_A": float(np.sqrt(np.mean(df**2)))}


@contextlib.contextmanager
def task_runner(config: CampaignConfig, store: CampaignStore):
    """The task runner for the fan-out stages: Prefect's thread pool, or prefect-dask on a local cluster / an
    address. Entered once per campaign run (a local Dask cluster is started once and closed at the end)."""
    ex = config.executor
    if ex.kind == "default":
        from prefect.task_runners import ThreadPoolTaskRunner

        runner = ThreadPoolTaskRunner(max_workers=ex.n_workers)
    else:
        from prefect_dask import DaskTaskRunner

        if ex.address:
            runner = DaskTaskRunner(address=ex.address)
        else:
            runner = DaskTaskRunner(
                cluster_class="distributed.LocalCluster",
                cluster_kwargs={"n_workers": ex.n_workers, "threads_per_worker": ex.threads_per_worker,
                                "processes": True, "dashboard_address": ex.dashboard_address,
                                "local_directory": str(store.root / "dask-scratch")})
    with runner:
        yield runner


# ---- adapters to the stage functions of tasks/ --------------------------------------------------------------
def label_settings(config: CampaignConfig):
    """``tasks.label.LabelSettings`` from the ``[labeling]`` section."""
    from tasks.label import LabelSettings

    return LabelSettings(**config.labeling.settings_fields())


def label_cache_dir(config: CampaignConfig, store: CampaignStore) -> Path:
    return Path(config.labeling.cache_dir).expanduser() if config.labeling.cache_dir else store.default_cache_dir


def run_labels(configs: xr.Dataset, config: CampaignConfig, store: CampaignStore, runner, title: str) -> xr.Dataset:
    """Label ``configs`` with PySCF: one task using ``n_workers`` local processes (default executor), or one
    task per batch on the Dask workers. Returns the labels in input order (failures have a status/reason)."""
    from tasks.label import label_task

    settings, cache = label_settings(config), str(label_cache_dir(config, store))
    n = configs.sizes["config"]
    if config.executor.kind == "dask" and n > 1:
        n_batches = min(n, config.executor.n_workers)
        batches = np.array_split(np.arange(n), n_batches)
        futures = [runner.submit(named(label_task, f"{title} [{b + 1}/{n_batches}]"),
                                 {"configs": configs.isel(config=idx), "settings": settings, "cache_dir": cache,
                                  "n_workers": 1})
                   for b, idx in enumerate(batches)]
        return concat([f.result() for f in futures])
    return named(label_task, title)(configs, settings, cache_dir=cache,
                                                         n_workers=config.labeling.n_workers)


# ---- the flow ------------------------------------------------------------------------------------------------
def _campaign_run_name() -> str:
    """Flow-run name in the UI: ``campaign-<name>`` (the campaign's ``name``)."""
    from prefect.runtime import flow_run

    try:
        name = load_config(flow_run.parameters.get("config_path")).name
    except Exception:  # the flow itself reports a bad configuration
        name = "invalid-config"
    return f"campaign-{name}"


@flow(name="active-learning", flow_run_name=_campaign_run_name, log_prints=False, persist_result=False)
def active_learning(config_path: str | None = None, directory: str | None = None,
                    max_iterations: int | None = None, more_iterations: int | None = None) -> dict:
    """Run (or resume) an active-learning campaign.

    config_path: campaign TOML/YAML (None = the embedded default); directory: campaign directory (default: the
    config's ``directory`` or ``runs/<name>``); max_iterations: overrides ``[stopping] max_iterations``
    (e.g. to continue a finished campaign further); more_iterations: allow that many label rounds beyond the
    iterations already recorded (the nightly continuation). Returns the campaign summary (see :func:`summarize`).
    """
    t0 = time.perf_counter()
    config = load_config(config_path)
    store = CampaignStore(config.campaign_dir(directory))
    if more_iterations is not None:
        metrics = store.read_metrics()
        last = int(metrics["iteration"].values.max()) if metrics is not None else 0
        max_iterations = last + int(more_iterations)
    if max_iterations is not None:
        config = config.model_copy(update={"stopping": config.stopping.model_copy(
            update={"max_iterations": int(max_iterations)})})
    with store.locked():
        store.initialize(config.to_toml())
        summary = Campaign(config, store).run()
    summary["flow_body_s"] = time.perf_counter() - t0
    return summary


class Campaign:
    """One run of the campaign loop over a store (state: the labels, the current potential, timings)."""

    def __init__(self, config: CampaignConfig, store: CampaignStore):
        self.config, self.store = config, store
        self.log = get_run_logger()
        self.key = artifact_key(config.name, "")
        self.progress_id = None
        self.t_start = time.perf_counter()

    # -- top level ------------------------------------------------------------------------------------------
    def run(self) -> dict:
        cfg, store = self.config, self.store
        if store.done_path.exists() and self._finished_within_budget():
            self.log.info("campaign in %s already finished (%s)", store.root, store.read_json("DONE.json")["reason"])
            return summarize(store)
        store.done_path.unlink(missing_ok=True)
        self.progress_id = create_progress_artifact(0.0, key=artifact_key(cfg.name, "progress"),
                                                    description=f"campaign {cfg.name}: iterations done")
        self.log.info("campaign %s in %s", cfg.name, store.root)
        with task_runner(cfg, store) as runner:
            self.runner = runner
            self.start_sets()
            reason = None
            it = 0
            while reason is None:
                reason = self.iteration(it)
                it += 1
        summary = {"reason": reason, "iterations": it, "wall_s": time.perf_counter() - self.t_start}
        store.write_json("DONE.json", summary)
        update_progress_artifact(self.progress_id, 100.0, description=f"campaign {cfg.name}: finished ({reason})")
        self.log.info("campaign finished after %d iteration(s): %s", it, reason)
        return summarize(store)

    def _finished_within_budget(self) -> bool:
        """A finished campaign is redone only where a larger iteration/label budget lets it continue."""
        done = self.store.read_json("DONE.json")
        reason = str(done.get("reason", ""))
        if reason.startswith("iteration budget"):
            return done.get("iterations", 0) - 1 >= self.config.stopping.max_iterations
        if reason.startswith("label budget"):
            labels = self.store.read_labels()
            return labels is not None and labels.sizes["config"] >= self.config.stopping.max_labels
        return True

    # -- starting set and test set --------------------------------------------------------------------------
    def start_sets(self) -> None:
        cfg, store = self.config, self.store
        system = load_system(cfg.system.builtin, cfg.structure_path(), cfg.system.index)
        if not store.has("start.done.json"):
            t0 = time.perf_counter()
            start = rattled_set(system, cfg.system.n_start, cfg.system.rattle, cfg.system.min_distance, cfg.seed)
            labels = run_labels(start, cfg, store, self.runner, f"label start set ({start.sizes['config']})")
            store.add_labels(labels, iteration=-1, origin="start")
            n_ok = ok_labels(labels).sizes["config"]
            if n_ok < 2:
                raise RuntimeError(f"only {n_ok} of {start.sizes['config']} starting configurations could be "
                                   "labeled; check [labeling] (see labels.nc status/reason)")
            store.write_json("start.done.json", {"wall_s": time.perf_counter() - t0, "n": start.sizes["config"]})
            self.log.info("labeled %d starting configurations (%d ok)", start.sizes["config"], n_ok)
        if cfg.system.n_test and not store.has("test_set.nc"):
            t0 = time.perf_counter()
            sigma = cfg.system.rattle if cfg.system.test_rattle is None else cfg.system.test_rattle
            test = rattled_set(system, cfg.system.n_test, sigma, cfg.system.min_distance, cfg.seed + 7919)
            labels = run_labels(test, cfg, store, self.runner, f"label test set ({test.sizes['config']})")
            labels.attrs["label_wall_s"] = time.perf_counter() - t0
            store.write_dataset("test_set.nc", labels)

    # -- one iteration ----------------------------------------------------------------------------------------
    def iteration(self, it: int) -> str | None:
        """Run (or resume) iteration ``it``; returns the stop reason, or None to go on."""
        cfg, store = self.config, self.store
        row: dict = {}
        t_it = time.perf_counter()
        labels = ok_labels(store.read_labels())
        potential, fit_info = self.fit(it, labels)
        row.update(fit_info)
        row["n_labels"] = int(labels.sizes["config"])
        test = store.read_dataset("test_set.nc") if store.has("test_set.nc") else None
        if test is not None:
            row.update({f"test_{k}": v for k, v in prediction_errors(potential, test).items()})
        row.update({f"train_{k}": v for k, v in prediction_errors(potential, labels).items()})
        reason = None
        target = cfg.stopping.force_rmse_target
        if target is not None and row.get("test_force_rmse_eV_per_A", np.inf) <= target:
            reason = f"error target reached (test force RMSE ≤ {target} eV/Å)"
        elif it >= cfg.stopping.max_iterations:
            reason = f"iteration budget ({cfg.stopping.max_iterations} label rounds)"
        elif row["n_labels"] >= cfg.stopping.max_labels:
            reason = f"label budget ({cfg.stopping.max_labels} labels)"
        if reason is None:
            pool, explore_info = self.explore(it, potential, labels)
            row.update(explore_info)
            candidates, select_info = self.select(it, potential, labels, pool)
            row.update(select_info)
            if row["n_above_threshold"] == 0 and cfg.stopping.stop_when_no_candidates:
                reason = f"converged: no explored configuration above grade {cfg.selection.threshold}"
            elif candidates.sizes["config"] > 0:
                row.update(self.label(it, candidates))
        row["iteration_s"] = time.perf_counter() - t_it
        row["stop_reason"] = reason or ""
        metrics = store.record_metrics(it, row)
        self.publish(it, row, metrics)
        return reason

    def fit(self, it: int, labels: xr.Dataset):
        from hmc_core.mtp import read_mtp

        cfg, store = self.config, self.store
        done = store.stage_done("fit", it)
        if done is None:
            from tasks.fit import fit_task

            t0 = time.perf_counter()
            n = labels.sizes["config"]
            # the same seed (random start of the radial coefficients) every iteration: fits differ by their data
            potential, report = named(fit_task, f"fit iteration {it} ({n} labels)")(
                labels, **cfg.potential.fit_arguments(cfg.seed))
            save_potential(store, it, potential, report)
            done = {"fit_s": time.perf_counter() - t0, "n_basis": int(potential.n_basis)}
            store.mark_done("fit", it, done)
            self.log.info("iteration %d: fitted MTP level %d on %d labels in %.1f s", it, cfg.potential.level,
                          labels.sizes["config"], done["fit_s"])
        potential = read_mtp(store.path("potential.mtp", it))
        return potential, done

    def explore(self, it: int, potential, labels: xr.Dataset) -> tuple[xr.Dataset, dict]:
        from tasks.explore import explore_task

        cfg, store = self.config, self.store
        done = store.stage_done("explore", it)
        if done is None:
            t0 = time.perf_counter()
            h = cfg.hmc
            from hmc_core.hmc import HMCConfig

            hmc = HMCConfig(temperature=h.temperatures[0], dt=h.dt, n_steps=h.n_steps, integrator=h.integrator,
                            n_warmup=h.n_warmup, save_every=h.save_every, units="metal")
            rng = np.random.default_rng([cfg.seed, it])
            starts = labels.isel(config=np.sort(rng.choice(labels.sizes["config"],
                                                           min(h.n_starts, labels.sizes["config"]),
                                                           replace=False)))
            active = build_active_set(potential, labels)
            store.write_dataset("active_set.nc", active.to_dataset(), it)
            sampler = potential.copy()
            sampler.below_min_dist = "nan"  # atoms pushed closer than min_dist: a rejected trajectory
            futures = []
            for k in range(starts.sizes["config"]):
                for t, temp in enumerate(h.temperatures):
                    monitor = make_grade_monitor(sampler, active, starts.isel(config=[k]))
                    futures.append(self.runner.submit(
                        named(explore_task, f"HMC iteration {it} start {k} at {temp:g} K"),
                        {"starts": starts.isel(config=[k]), "potential": sampler, "hmc": hmc,
                         "n_samples": h.n_samples, "temperatures": [temp], "seed": cfg.seed + 1000 * it + 10 * k + t,
                         "n_workers": 1, "monitor": monitor, "stop_above": cfg.selection.break_threshold}))
            frames, runs = [], []
            for c, fut in enumerate(futures):
                conf, raw = fut.result()
                conf["chain"] = ("config", np.full(conf.sizes["config"], c, np.int32))
                conf = conf.rename({"monitor": "grade"})
                frames.append(conf)
                runs.append(raw[0].drop_vars(["positions", "frame_sample", "monitor", "species", "cell", "pbc"]))
            pool = concat(frames)
            store.write_dataset("samples.nc", pool, it)
            traces = xr.concat(runs, dim="chain", combine_attrs="drop_conflicts")
            store.write_dataset("trajectories.nc", traces, it)
            done = {"explore_s": time.perf_counter() - t0, "n_pool": int(pool.sizes["config"]),
                    "n_chains": len(futures), "chains_stopped": int(traces["stopped_early"].sum()),
                    "acceptance": acceptance(traces),
                    "max_grade": float(np.nanmax(pool["grade"].values)) if pool.sizes["config"] else float("nan")}
            store.mark_done("explore", it, done)
            self.log.info("iteration %d: %d HMC chains, %d frames, %d chains stopped at the break grade, "
                          "max grade %.3g", it, done["n_chains"], done["n_pool"], done["chains_stopped"],
                          done["max_grade"])
        return store.read_dataset("samples.nc", it), done

    def select(self, it: int, potential, labels: xr.Dataset, pool: xr.Dataset) -> tuple[xr.Dataset, dict]:
        cfg, store = self.config, self.store
        done = store.stage_done("select", it)
        if done is None:
            from tasks.select import select_task

            t0 = time.perf_counter()
            budget = min(cfg.selection.budget, max(0, cfg.stopping.max_labels - labels.sizes["config"]))
            active = load_active_set(store.read_dataset("active_set.nc", it))
            selected, summary = named(select_task, f"select iteration {it}")(
                pool, potential, active, threshold=cfg.selection.threshold,
                break_threshold=cfg.selection.break_threshold, budget=budget, seed=cfg.seed + it)
            store.write_dataset("candidates.nc", selected, it)
            store.write_dataset("pool_summary.nc", summary, it)
            done = {"select_s": time.perf_counter() - t0, "n_selected": int(selected.sizes["config"]),
                    "n_above_threshold": int(summary.attrs["n_candidates"]),
                    "n_above_break": int(summary.attrs["n_break"]), "n_invalid": int(summary.attrs["n_invalid"])}
            store.mark_done("select", it, done)
            self.log.info("iteration %d: %d of %d frames above grade %g, %d selected", it,
                          done["n_above_threshold"], pool.sizes["config"], cfg.selection.threshold,
                          done["n_selected"])
        return store.read_dataset("candidates.nc", it), done

    def label(self, it: int, candidates: xr.Dataset) -> dict:
        cfg, store = self.config, self.store
        done = store.stage_done("label", it)
        if done is None:
            t0 = time.perf_counter()
            labels = run_labels(candidates, cfg, store, self.runner,
                                f"label iteration {it} ({candidates.sizes['config']} configurations)")
            store.add_labels(labels, iteration=it, origin="candidate")
            n_ok = int(ok_labels(labels).sizes["config"])
            done = {"label_s": time.perf_counter() - t0, "n_new_labels": n_ok,
                    "n_failed": int(candidates.sizes["config"] - n_ok),
                    "pyscf_s": float(np.nansum(labels["wall_time"].values)) if "wall_time" in labels else np.nan}
            store.mark_done("label", it, done)
            self.log.info("iteration %d: labeled %d configuration(s) (%d failed) in %.1f s", it,
                          candidates.sizes["config"], done["n_failed"], done["label_s"])
        return done

    # -- reporting ------------------------------------------------------------------------------------------
    def publish(self, it: int, row: dict, metrics: xr.Dataset) -> None:
        cfg = self.config
        table = metrics_table(metrics)
        create_table_artifact(table, key=artifact_key(cfg.name, "metrics"),
                              description=f"campaign {cfg.name}: metrics per iteration")
        create_markdown_artifact(iteration_markdown(cfg, it, row), key=artifact_key(cfg.name, "iteration"),
                                 description=f"campaign {cfg.name}: iteration {it}")
        if self.progress_id is not None:
            total = cfg.stopping.max_iterations + 1
            update_progress_artifact(self.progress_id, min(100.0, 100.0 * (it + 1) / total))
        self.log.info("iteration %d: %d labels, test force RMSE %.4f eV/Å, energy RMSE %.2f meV/atom%s", it,
                      row["n_labels"], row.get("test_force_rmse_eV_per_A", np.nan),
                      row.get("test_energy_rmse_meV_per_atom", np.nan),
                      f" → stop: {row['stop_reason']}" if row["stop_reason"] else "")


def acceptance(traces: xr.Dataset) -> float:
    """Mean HMC acceptance over the trajectories the chains ran (chains stopped at the break grade have NaN
    energies after their last trajectory; those do not count)."""
    ran = np.isfinite(traces["potential_energy"].values)
    return float(traces["accepted"].values[ran].mean()) if ran.any() else float("nan")


def save_potential(store: CampaignStore, it: int, potential, report) -> None:
    """potential.mtp (MLIP format) and potential.json (parameters + fit report) of iteration ``it``,
    and copies as final.mtp / final.json."""
    from hmc_core.mtp import write_mtp

    info = {"potential": potential.describe(), "fit_report": _report_dict(report), "iteration": it}
    for name in ("potential", "final"):
        target = store.path(f"{name}.mtp", it if name == "potential" else None)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        write_mtp(potential, tmp)
        tmp.replace(target)
        store.write_json(f"{name}.json", info, it if name == "potential" else None)


def _report_dict(report) -> dict:
    if report is None:
        return {}
    if isinstance(report, dict):
        return report
    if hasattr(report, "to_dict"):
        return report.to_dict()
    from dataclasses import asdict, is_dataclass

    return asdict(report) if is_dataclass(report) else {"report": str(report)}


def build_active_set(potential, labels: xr.Dataset):
    """MaxVol active set (per-atom environments) of the training labels for ``potential``."""
    from hmc_core.uncertainty import build_active_set as build

    return build(potential, labels, mode="atom")


def load_active_set(ds: xr.Dataset):
    from hmc_core.uncertainty import ActiveSet

    return ActiveSet.from_dataset(ds)


def make_grade_monitor(potential, active, start: xr.Dataset):
    """``monitor(positions) -> grade`` for HMC on ``start``'s system (``hmc_core.uncertainty.grade_monitor``)."""
    from hmc_core.uncertainty import grade_monitor

    _, species, cell, pbc = config_arrays(start, 0)
    return grade_monitor(potential, active, species, cell, pbc)


def metrics_table(metrics: xr.Dataset) -> list[dict]:
    """Rows of the metrics dataset as JSON-friendly dicts (for the Prefect table artifact)."""
    cols = ["n_labels", "n_new_labels", "n_failed", "test_energy_rmse_meV_per_atom", "test_force_rmse_eV_per_A",
            "n_pool", "n_above_threshold", "n_selected", "max_grade", "chains_stopped", "acceptance",
            *STAGE_TIMES, "iteration_s", "stop_reason"]
    rows = []
    for i in metrics["iteration"].values:
        row = {"iteration": int(i)}
        for c in cols:
            if c in metrics:
                v = metrics[c].sel(iteration=i).item()
                if isinstance(v, float):
                    v = None if not np.isfinite(v) else round(v, 4)
                row[c] = v
        rows.append(row)
    return rows


def iteration_markdown(cfg: CampaignConfig, it: int, row: dict) -> str:
    """Markdown summary of one iteration (Prefect artifact)."""
    def f(key, fmt="{:.4g}"):
        v = row.get(key)
        return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else fmt.format(v)

    lines = [f"# {cfg.name}: iteration {it}", "",
             f"- labels used in the fit: **{f('n_labels', '{:d}')}**; new labels this iteration: "
             f"{f('n_new_labels', '{:d}')} ({f('n_failed', '{:d}')} failed)",
             f"- held-out errors: energy RMSE {f('test_energy_rmse_meV_per_atom')} meV/atom, force RMSE "
             f"{f('test_force_rmse_eV_per_A')} eV/Å",
             f"- exploration: {f('n_chains', '{:d}')} HMC chains, {f('n_pool', '{:d}')} frames, "
             f"{f('chains_stopped', '{:d}')} stopped at grade > {cfg.selection.break_threshold}, "
             f"acceptance {f('acceptance', '{:.2f}')}, max grade {f('max_grade')}",
             f"- selection: {f('n_above_threshold', '{:d}')} frames above grade {cfg.selection.threshold}, "
             f"{f('n_selected', '{:d}')} selected",
             "- wall time (s): " + ", ".join(f"{k[:-2]} {f(k, '{:.1f}')}" for k in STAGE_TIMES),
             ]
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
            "n_ok_labels": 0 if labels is None else int(ok_labels(labels).sizes["config"]),
            "final_potential": str(store.path("final.mtp")) if store.path("final.mtp").exists() else None,
            "metrics": [] if metrics is None else metrics_table(metrics)}

