"""The active-learning campaign as one Prefect flow, ``active_learning``.

Iteration ``i`` (all results in the campaign directory, see :mod:`flows.store`):

1. **fit** the MTP on the usable labels of earlier iterations (``tasks.fit``; iteration ``i`` fits exactly the
   labels with ``iteration < i``, so a finished iteration never changes), errors on the held-out test set;
2. **stop?** error target, iteration budget, label budget (:func:`stop_before_exploring`);
3. **explore**: one HMC chain per (system, start, temperature) on that MTP (``tasks.explore``), fanned out as Prefect
   tasks; a chain stops as soon as a frame's extrapolation grade exceeds the break threshold;
4. **select** at most ``budget`` candidates with grade above the threshold (``tasks.select``); none at all
   ends the campaign (:func:`stop_after_selecting`);
5. **cut** (with ``[labeling] cluster_cut``): the selected periodic frames become open clusters around their
   uncertain atoms (``tasks.cluster_cuts``), whose core forces are fitted;
   **label** them with the configured labeler (``tasks.label``); failures are recorded and never fitted;
6. **record** the iteration's metrics row (metrics.nc; a recorded row is final) and Prefect artifacts.

Before iteration 0 the starting set (random displacements of each system) and the held-out test set are labeled.
Several systems (``[[system]]``) share the fit, the selection and the label budget; each explores from its own
labels at its own temperatures, and labels, frames and metrics carry the system (:mod:`flows.campaign_systems`).
Every stage writes its outputs atomically and then a completion marker; a campaign killed at any point resumes
from the last marker when started again with the same command and ends with the same files as an uninterrupted
run (the label cache answers every PySCF calculation that had finished). Random streams come from
:meth:`flows.config.CampaignConfig.stream`. This module only wires: store I/O, markers, fan-out, stop rule.
"""

from __future__ import annotations

import contextlib
import logging
import time

import numpy as np
import xarray as xr
from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from flows.campaign_systems import (
    chain_title,
    per_system_errors,
    plan_explore,
    rattled_sets,
    system_index,
    tagged,
)
from flows.config import CampaignConfig, StoppingConfig, load_config
from flows.production import run_production
from flows.reporting import artifact_key, iteration_markdown, metrics_table, summarize
from flows.store import CampaignStore
from hmc_core.configurations import concat
from hmc_core.mtp import read_mtp
from hmc_core.mtp.fit import prediction_errors, usable_labels
from hmc_core.uncertainty import ActiveSet


def named(stage_task, name: str):
    """``stage_task`` with a readable run name for the UI and Prefect's result caching off: the campaign store
    and the label cache make resumes exact, and hashing large datasets as cache keys would only cost time."""
    from prefect.cache_policies import NO_CACHE

    return stage_task.with_options(task_run_name=name, cache_policy=NO_CACHE)


#: HMC chains accepting fewer trajectories than this are reported (log warning, metrics ``chains_low_acceptance``)
LOW_ACCEPTANCE = 0.05


# ---- the stop rule ---------------------------------------------------------------------------------------------
def stop_before_exploring(it: int, n_labels: int, test_force_rmse: float, stopping: StoppingConfig,
                          ensemble_force_rmse: float = np.nan) -> str | None:
    """Stop reason after the fit of iteration ``it`` (on ``n_labels`` usable labels, held-out force RMSE
    ``test_force_rmse`` eV/Å, NaN without a test set; ``ensemble_force_rmse`` eV/Å on the ensemble test set, NaN
    without one), or None to go on exploring."""
    target = stopping.force_rmse_target
    if target is not None and np.isfinite(test_force_rmse) and test_force_rmse <= target:
        return (f"error target reached: test force RMSE {test_force_rmse:.4g} ≤ {target} eV/Å "
                "(checked on the held-out set only)")
    target = stopping.ensemble_force_rmse_target
    if target is not None and np.isfinite(ensemble_force_rmse) and ensemble_force_rmse <= target:
        return (f"error target reached: ensemble test force RMSE {ensemble_force_rmse:.4g} ≤ {target} eV/Å "
                "(frames from HMC on this potential at the campaign's state points)")
    if it >= stopping.max_iterations:
        return f"iteration budget ({stopping.max_iterations} label rounds); not converged"
    if n_labels >= stopping.max_labels:
        return f"label budget ({stopping.max_labels} labels); not converged"
    return None


def stop_after_selecting(n_above_threshold: int, threshold: float, stopping: StoppingConfig) -> str | None:
    """Stop reason after the selection (no explored frame above the selection grade), or None."""
    if n_above_threshold == 0 and stopping.stop_when_no_candidates:
        return (f"converged: no explored frame above grade {threshold} (checked: the frames this iteration's HMC "
                "chains visited; not checked: states they did not reach, and the size of the errors)")
    return None


def budget_stop_lifted(reason: str, it: int, n_labels: int, stopping: StoppingConfig) -> bool:
    """A recorded budget stop that the current (larger) budgets no longer impose: the campaign continues."""
    if reason.startswith("iteration budget"):
        return it < stopping.max_iterations and n_labels < stopping.max_labels
    if reason.startswith("label budget"):
        return n_labels < stopping.max_labels and it < stopping.max_iterations
    return False


def continues(config: CampaignConfig, store: CampaignStore) -> bool:
    """A finished campaign continues only where larger budgets lift its recorded budget stop."""
    metrics = store.read_metrics()
    if metrics is None:
        return True
    last = int(metrics["iteration"].values.max())
    row = metrics.sel(iteration=last)
    return budget_stop_lifted(str(row["stop_reason"].item()), last, int(row["n_labels"].item()), config.stopping)


def nothing_to_do(config: CampaignConfig, store: CampaignStore) -> str | None:
    """The recorded stop reason of a finished campaign that this configuration would not continue (its budgets do
    not lift the stop) and whose ``[production]`` study, if any, is done for the current ``final.mtp``: the command
    line then answers without starting Prefect. None when a run has work to do."""
    from flows.production import production_pending

    if not store.done_path.exists() or continues(config, store) or production_pending(config, store):
        return None
    return str(store.read_json("DONE.json")["reason"])


# ---- the flow ------------------------------------------------------------------------------------------------
def _campaign_run_name() -> str:
    """Flow-run name in the UI: ``campaign-<name>``."""
    from prefect.runtime import flow_run

    params = flow_run.parameters
    try:
        cfg = params.get("config") or load_config(params.get("config_path"))
        name = cfg["name"] if isinstance(cfg, dict) else cfg.name
    except Exception:  # the flow itself reports a bad configuration
        name = "invalid-config"
    return f"campaign-{name}"


@flow(name="active-learning", flow_run_name=_campaign_run_name, log_prints=False, persist_result=False)
def active_learning(config_path: str | None = None, directory: str | None = None,
                    max_iterations: int | None = None, more_iterations: int | None = None,
                    config: CampaignConfig | None = None, ui_plots: bool = True) -> dict:
    """Run (or resume) an active-learning campaign.

    config: the validated configuration (the CLI passes it; it is parsed once), else read from config_path
    (campaign TOML/YAML; None = the embedded default); directory: campaign directory (default: the config's
    ``directory`` or ``runs/<name>``); max_iterations: overrides ``[stopping] max_iterations``; more_iterations:
    allow that many label rounds beyond the iterations already recorded (the nightly continuation); ui_plots:
    publish each iteration's learning curve and parity plot as a Prefect artifact (about 1-3 s per iteration).
    Returns the campaign summary (:func:`flows.reporting.summarize`) plus ``this_run_s``: seconds per stage
    spent by this run (stages resumed from markers cost nothing).
    """
    t0 = time.perf_counter()
    config = config if config is not None else load_config(config_path)
    store = CampaignStore(config.campaign_dir(directory))
    if more_iterations is not None:
        metrics = store.read_metrics()
        last = int(metrics["iteration"].values.max()) if metrics is not None else 0
        max_iterations = last + int(more_iterations)
    if max_iterations is not None:
        config = config.with_overrides(stopping={"max_iterations": int(max_iterations)})
    with store.locked():
        store.initialize(config.to_toml())
        store.remove_stale_temporaries()
        store.provenance = {"campaign_seed": config.seed, "campaign_config": store.config_path.read_text()}
        campaign = Campaign(config, store, ui_plots=ui_plots)
        summary = campaign.run()
    summary["this_run_s"] = dict(campaign.spent)
    summary["flow_body_s"] = time.perf_counter() - t0
    return summary


@contextlib.contextmanager
def task_runner(config: CampaignConfig, store: CampaignStore):
    """The task runner for the fan-out stages: Prefect's thread pool, or prefect-dask on a local cluster / an
    address, or SLURM jobs (:mod:`flows.slurm`). Entered once per campaign run (a local Dask cluster or the SLURM
    jobs are started once and closed at the end)."""
    ex = config.executor
    if ex.kind == "slurm":
        from flows.slurm import slurm_task_runner

        with slurm_task_runner(config, store) as runner:
            yield runner
        return
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


class Campaign:
    """Wiring of one campaign run over a store: which stage runs, with what inputs, where its outputs go."""

    def __init__(self, config: CampaignConfig, store: CampaignStore, ui_plots: bool = True):
        self.config, self.store, self.ui_plots = config, store, ui_plots
        try:
            self.log = get_run_logger()
        except Exception:  # outside a flow run (plain calls in tests): the standard logger
            self.log = logging.getLogger(__name__)
        self.progress_id = None
        self.spent: dict[str, float] = {}
        self.selection = config.selection  # this iteration's selection settings (:meth:`calibrate`)

    def _timed(self, stage: str, t0: float) -> float:
        seconds = time.perf_counter() - t0
        self.spent[stage] = self.spent.get(stage, 0.0) + seconds
        return seconds

    # -- top level ------------------------------------------------------------------------------------------
    def run(self) -> dict:
        cfg, store = self.config, self.store
        if store.done_path.exists() and not self._continues():
            self.log.info("campaign in %s already finished (%s)", store.root, store.read_json("DONE.json")["reason"])
            run_production(self)
            return summarize(store)
        store.done_path.unlink(missing_ok=True)
        self.progress_id = create_progress_artifact(0.0, key=artifact_key(cfg.name, "progress"),
                                                    description=f"campaign {cfg.name}: iterations done")
        self.log.info("campaign %s in %s", cfg.name, store.root)
        with task_runner(cfg, store) as runner:
            self.runner = runner
            self.start_sets()
            reason, it = None, 0
            while reason is None:
                reason = self.iteration(it)
                it += 1
        last = it - 1
        for name in ("final.mtp", "final.json"):
            store.copy_file(store.path(name.replace("final", "potential"), last), store.path(name))
        store.write_json("DONE.json", {"reason": reason, "iterations": it})
        update_progress_artifact(self.progress_id, 100.0, description=f"campaign {cfg.name}: finished ({reason})")
        self.log.info("campaign finished after %d iteration(s): %s", it, reason)
        run_production(self)
        return summarize(store)

    def _continues(self) -> bool:
        return continues(self.config, self.store)

    # -- starting set and test set --------------------------------------------------------------------------
    def start_sets(self) -> None:
        cfg, store = self.config, self.store
        if not store.has("start.done.json"):
            t0 = time.perf_counter()
            start = rattled_sets(cfg, "start_set")
            labels = self.label_set(start, f"label start set ({start.sizes['config']})")
            store.add_labels(labels, iteration=-1, origin="start")
            n_ok = usable_labels(labels).sizes["config"]
            if n_ok < 2:
                raise RuntimeError(f"only {n_ok} of {start.sizes['config']} starting configurations could be "
                                   "labeled; see the status/reason variables of labels.nc")
            store.write_json("start.done.json", {"wall_s": self._timed("label start set", t0),
                                                 "n": start.sizes["config"]})
            self.log.info("labeled %d starting configurations (%d ok)", start.sizes["config"], n_ok)
        if not store.has("test_set.nc") and (test := rattled_sets(cfg, "test_set")) is not None:
            t0 = time.perf_counter()
            labels = self.label_set(test, f"label test set ({test.sizes['config']})")
            labels.attrs["label_wall_s"] = self._timed("label test set", t0)
            store.write_dataset("test_set.nc", labels)

    # -- one iteration ----------------------------------------------------------------------------------------
    def iteration(self, it: int) -> str | None:
        """Run (or resume) iteration ``it``; returns the stop reason, or None to go on. A recorded row is final
        (unless it recorded a budget stop that larger budgets now lift)."""
        cfg, store = self.config, self.store
        recorded = store.metrics_row(it)
        if recorded is not None and not budget_stop_lifted(recorded["stop_reason"], it, int(recorded["n_labels"]),
                                                           cfg.stopping):
            return recorded["stop_reason"] or None
        t_it = time.perf_counter()
        labels = store.training_labels(it)
        potential, active, row = self.fit(it, labels)
        row["n_labels"] = int(labels.sizes["config"])
        if store.has("test_set.nc"):
            row.update({f"test_{k}": v for k, v in prediction_errors(potential, store.read_dataset("test_set.nc"))
                        .items()})
        row.update({f"train_{k}": v for k, v in prediction_errors(potential, labels).items()})
        ensemble = None
        if cfg.ensemble_test is not None:
            ensemble, drawn = self.ensemble(it, potential, labels)
            row.update(drawn)
            row.update({f"ensemble_{k}": v for k, v in prediction_errors(potential, ensemble).items()})
        row.update(per_system_errors(cfg, potential, {"train": labels, **(
            {"test": store.read_dataset("test_set.nc")} if store.has("test_set.nc") else {}), **(
            {"ensemble": ensemble} if ensemble is not None else {})}))
        row.update(self.calibrate(it))
        reason = stop_before_exploring(it, row["n_labels"], row.get("test_force_rmse_eV_per_A", np.nan),
                                       cfg.stopping, row.get("ensemble_force_rmse_eV_per_A", np.nan))
        if reason is None:
            pool, explored = self.explore(it, potential, active, labels)
            row.update(explored)
            candidates, selected = self.select(it, potential, active, pool, row["n_labels"])
            row.update(selected)
            reason = stop_after_selecting(row["n_above_threshold"], self.selection.threshold, cfg.stopping)
            if reason is None and candidates.sizes["config"] > 0:
                if cfg.labeling.cluster_cut is not None:
                    candidates, cut = self.cut(it, potential, active, candidates, row["n_labels"])
                    row.update(cut)
                row.update(self.label(it, candidates))
        row["iteration_s"] = time.perf_counter() - t_it
        row["stop_reason"] = reason or ""
        metrics = store.record_metrics(it, row)
        self.publish(it, row, metrics)
        return reason

    def fit(self, it: int, labels: xr.Dataset) -> tuple[object, ActiveSet, dict]:
        cfg, store = self.config, self.store
        done = store.stage_done("fit", it)
        if done is None:
            from tasks.fit import fit_task

            t0 = time.perf_counter()
            n = labels.sizes["config"]
            result = named(fit_task, f"fit iteration {it} ({n} labels)")(labels, cfg.potential, cfg.stream("fit"))
            capped = bool(result.report.get("optimizer")) and \
                result.report["optimizer"]["iterations"] >= cfg.potential.max_iter
            store.write_mtp(result.potential, store.path("potential.mtp", it))
            store.write_json("potential.json", {"potential": result.potential.describe(),
                                                "fit_report": result.report, "iteration": it}, it)
            store.write_dataset("active_set.nc", result.active_set.to_dataset(), it)
            done = {"fit_s": self._timed("fit", t0), "n_basis": int(result.potential.n_basis),
                    "fit_capped": int(capped)}
            store.mark_done("fit", it, done)
            self.log.info("iteration %d: fitted MTP level %d on %d labels in %.1f s", it, cfg.potential.level,
                          n, done["fit_s"])
            if capped:
                self.log.warning("iteration %d: the fit stopped at its iteration cap ([potential] max_iter = %d) "
                                 "before converging; raise max_iter for a converged fit", it, cfg.potential.max_iter)
        potential = read_mtp(store.path("potential.mtp", it))
        active = ActiveSet.from_dataset(store.read_dataset("active_set.nc", it))
        return potential, active, dict(done)

    def calibrate(self, it: int) -> dict:
        """The grade → force-error calibration of iteration ``it`` (:mod:`flows.calibration`) and the selection
        settings it implies (``[selection] force_error_threshold`` mapped to a grade); returns metrics columns."""
        from flows.calibration import calibrate, metrics_columns

        cal = calibrate(self.config, self.store, it)
        sel = self.config.selection
        if cal["threshold_gamma"] != sel.threshold:
            sel = sel.model_copy(update={"threshold": cal["threshold_gamma"]})
        if sel.force_error_threshold is not None:
            self.log.info("iteration %d: selection threshold γ > %.4g from %s (force_error_threshold %g eV/Å)", it,
                          sel.threshold, cal["threshold_source"], sel.force_error_threshold)
        self.selection = sel
        return metrics_columns(cal)

    def ensemble(self, it: int, potential, labels: xr.Dataset) -> tuple[xr.Dataset, dict]:
        """``[ensemble_test]``: HMC on this iteration's potential (no active set, no early stop) at every system's
        state points, then the ensemble test set (``tasks.ensemble_test``): the set in use if still representative,
        else the fresh frames, labeled by the reference method (cluster cuts with ``[labeling] cluster_cut``).
        Returns the labeled set and the metrics (drawn at, redrawn, KS p-value, sampling and labeling seconds)."""
        cfg, store, es = self.config, self.store, self.config.ensemble_test
        done = store.stage_done("ensemble", it)
        if done is None:
            from tasks.cluster_cuts import exploration_starts
            from tasks.ensemble_test import EnsembleDrawInputs, cut_around, ensemble_draw_task
            from tasks.explore import ExploreInputs, explore_task

            t0 = time.perf_counter()
            hmc = cfg.hmc.model_copy(update={"n_starts": es.n_chains, "n_samples": es.n_samples or cfg.hmc.n_samples})
            starts = exploration_starts(labels)
            plan = plan_explore(cfg.model_copy(update={"hmc": hmc}), starts, it)
            futures = [self.runner.submit(
                named(explore_task, "ensemble " + chain_title(cfg, it, c)),
                {"inputs": ExploreInputs(starts.isel(config=[c.start]), c.temperature, potential, None, np.inf,
                                         c.pressure),
                 "settings": hmc, "seed": cfg.stream("ensemble_chain", it, *c.key)}) for c in plan]
            chains = tuple(tagged(f.result().frames, c.name) for c, f in zip(plan, futures, strict=True))
            previous = store.stage_done("ensemble", it - 1) if it > 0 else None
            stored = None if previous is None else store.read_dataset("ensemble_frames.nc",
                                                                      previous["ensemble_drawn_at"])
            drawn = named(ensemble_draw_task, f"ensemble test set iteration {it}")(
                EnsembleDrawInputs(chains, tuple(c.system for c in plan), len(cfg.systems), potential, stored,
                                   None if stored is None else system_index(stored, cfg)),
                es, cfg.stream("ensemble_pick", it))
            sample_s = self._timed("ensemble test set", t0)
            done = {"ensemble_sample_s": sample_s, "ensemble_label_s": 0.0, "ensemble_redrawn": int(drawn.redraw),
                    "ensemble_drawn_at": it if drawn.redraw else previous["ensemble_drawn_at"],
                    "ensemble_p_value": float(np.min(drawn.p_values))}
            if drawn.redraw:
                t1 = time.perf_counter()
                configs = drawn.frames if cfg.labeling.cluster_cut is None else cut_around(
                    drawn.frames, es.atoms_per_frame, cfg.labeling.cluster_cut, float(potential.cutoff),
                    cfg.stream("ensemble_cut", it))
                labeled = self.label_set(configs, f"label ensemble test set iteration {it} "
                                                  f"({configs.sizes['config']} configurations)")
                store.write_dataset("ensemble_frames.nc", drawn.frames, it)
                store.write_dataset("ensemble_test.nc", labeled, it)
                done["ensemble_label_s"] = self._timed("ensemble test set", t1)
            store.mark_done("ensemble", it, done)
            self.log.info("iteration %d: ensemble test set %s (KS p-value %.3g)", it,
                          "drawn and labeled" if drawn.redraw else
                          f"of iteration {done['ensemble_drawn_at']} still representative", done["ensemble_p_value"])
        ensemble = store.read_dataset("ensemble_test.nc", done["ensemble_drawn_at"])
        return ensemble, {**done, "ensemble_n": int(ensemble.sizes["config"])}

    def explore(self, it: int, potential, active: ActiveSet, labels: xr.Dataset) -> tuple[xr.Dataset, dict]:
        cfg, store = self.config, self.store
        done = store.stage_done("explore", it)
        if done is None:
            from tasks.cluster_cuts import exploration_starts
            from tasks.explore import ExploreInputs, explore_task

            t0 = time.perf_counter()
            labels = exploration_starts(labels)  # chains start from whole frames, never from cluster cuts
            plan = plan_explore(cfg, labels, it)
            futures = [self.runner.submit(
                named(explore_task, chain_title(cfg, it, c)),
                {"inputs": ExploreInputs(labels.isel(config=[c.start]), c.temperature, potential, active,
                                         cfg.selection.break_threshold, c.pressure),
                 "settings": cfg.hmc, "seed": cfg.stream("chain", it, *c.key)}) for c in plan]
            results = [f.result() for f in futures]
            frames = []
            for c, (spec, res) in enumerate(zip(plan, results, strict=True)):
                f = tagged(res.frames, spec.name)
                f["chain"] = ("config", np.full(f.sizes["config"], c, np.int32))
                f["start"] = ("config", np.full(f.sizes["config"], spec.start, np.int32))
                frames.append(f)
            pool = concat(frames)
            traces = xr.concat([r.trace for r in results], dim="chain", combine_attrs="drop_conflicts")
            store.write_dataset("samples.nc", pool, it)
            store.write_dataset("trajectories.nc", traces, it)
            ran = np.isfinite(traces["potential_energy"].values)
            low = [chain_title(cfg, it, c) for c, r in zip(plan, results, strict=True)
                   if np.isfinite(r.acceptance) and r.acceptance < LOW_ACCEPTANCE]
            if low:
                self.log.warning("iteration %d: %d HMC chain(s) accepted under %.0f %% of their trajectories (%s): "
                                 "their frames barely move; lower [hmc] dt or n_steps", it, len(low),
                                 100 * LOW_ACCEPTANCE, "; ".join(low))
            done = {"explore_s": self._timed("explore", t0), "n_pool": int(pool.sizes["config"]),
                    "chains_low_acceptance": len(low),
                    "n_chains": len(plan), "chains_stopped": int(sum(r.stopped_early for r in results)),
                    "acceptance": float(traces["accepted"].values[ran].mean()) if ran.any() else float("nan"),
                    "max_grade": float(np.nanmax(pool["grade"].values)) if pool.sizes["config"] else float("nan")}
            store.mark_done("explore", it, done)
            self.log.info("iteration %d: %d HMC chains, %d frames, %d chains stopped at the break grade, "
                          "max grade %.3g", it, done["n_chains"], done["n_pool"], done["chains_stopped"],
                          done["max_grade"])
        return store.read_dataset("samples.nc", it), dict(done)

    def select(self, it: int, potential, active: ActiveSet, pool: xr.Dataset,
               n_labels: int) -> tuple[xr.Dataset, dict]:
        cfg, store = self.config, self.store
        done = store.stage_done("select", it)
        if done is None:
            from tasks.select import SelectInputs, select_task

            t0 = time.perf_counter()
            inputs = SelectInputs(pool, potential, active, max_new=cfg.stopping.max_labels - n_labels)
            result = named(select_task, f"select iteration {it}")(inputs, self.selection, cfg.stream("select", it))
            store.write_dataset("candidates.nc", result.selected, it)
            store.write_dataset("pool_summary.nc", result.summary, it)
            done = {"select_s": self._timed("select", t0), "n_selected": int(result.selected.sizes["config"]),
                    "n_above_threshold": result.n_above_threshold, "n_above_break": result.n_above_break,
                    "n_invalid": result.n_invalid, "n_unphysical": result.n_unphysical}
            if result.n_unphysical:
                problems = result.summary["reason"].values[result.summary["problem"].values != ""]
                kinds = ", ".join(f"{n} {k}" for k, n in zip(*np.unique(problems, return_counts=True), strict=True))
                self.log.warning("iteration %d: %d explored frame(s) refused as candidates (%s; see pool_summary.nc "
                                 "`problem`): an evaporating cluster or dissociating molecule at these temperatures, "
                                 "or a potential without repulsion where it has no data", it, result.n_unphysical,
                                 kinds)
            store.mark_done("select", it, done)
            self.log.info("iteration %d: %d of %d frames above grade %g, %d selected", it,
                          done["n_above_threshold"], pool.sizes["config"], self.selection.threshold,
                          done["n_selected"])
        return store.read_dataset("candidates.nc", it), dict(done)

    def cut(self, it: int, potential, active: ActiveSet, frames: xr.Dataset, n_labels: int) -> tuple[xr.Dataset, dict]:
        """``[labeling] cluster_cut``: the selected periodic frames become open clusters, one per uncertain atom
        (``tasks.cluster_cuts``; at most the selection budget and the labels left), which are labeled instead."""
        cfg, store = self.config, self.store
        done = store.stage_done("cut", it)
        if done is None:
            from tasks.cluster_cuts import ClusterCutInputs, cluster_cut_task

            t0 = time.perf_counter()
            budget = min(cfg.selection.budget, cfg.stopping.max_labels - n_labels)
            result = named(cluster_cut_task, f"cluster cuts iteration {it}")(
                ClusterCutInputs(frames, potential, active, self.selection.threshold, budget), cfg.labeling.cluster_cut)
            store.write_dataset("clusters.nc", result.clusters, it)
            done = {"cut_s": self._timed("cut", t0), "n_clusters": int(result.clusters.sizes["config"]),
                    "n_uncertain_atoms": result.n_uncertain_atoms}
            store.mark_done("cut", it, done)
            self.log.info("iteration %d: %d cluster(s) cut around %d uncertain atom(s) of %d frame(s)", it,
                          done["n_clusters"], done["n_uncertain_atoms"], frames.sizes["config"])
        return store.read_dataset("clusters.nc", it), dict(done)

    def label(self, it: int, candidates: xr.Dataset) -> dict:
        store = self.store
        done = store.stage_done("label", it)
        if done is None:
            t0 = time.perf_counter()
            labels = self.label_set(candidates, f"label iteration {it} ({candidates.sizes['config']} configurations)")
            store.add_labels(labels, iteration=it, origin="candidate")
            n_ok = int(usable_labels(labels).sizes["config"])
            done = {"label_s": self._timed("label", t0), "n_new_labels": n_ok,
                    "n_failed": int(candidates.sizes["config"] - n_ok),
                    "pyscf_s": float(np.nansum(labels["wall_time"].values)) if "wall_time" in labels else np.nan}
            store.mark_done("label", it, done)
            self.log.info("iteration %d: labeled %d configuration(s) (%d failed) in %.1f s", it,
                          candidates.sizes["config"], done["n_failed"], done["label_s"])
        return dict(done)

    def label_set(self, configs: xr.Dataset, title: str) -> xr.Dataset:
        """Label ``configs`` with PySCF: one task using the labeler's local worker processes (default executor),
        or one task per batch on the Dask workers. Labels come back in input order (failures have a status)."""
        from tasks.label import LabelInputs, label_task

        cfg, store = self.config, self.store
        settings = cfg.labeling.label_settings()
        cache = str(store.label_cache_dir(cfg.labeling.cache_dir))
        n = configs.sizes["config"]
        if cfg.executor.kind == "slurm" and n > 0:
            from flows.slurm import submit_labels

            return submit_labels(self.runner, lambda name: named(label_task, name), configs, settings, cache,
                                 cfg.executor, title)
        if cfg.executor.kind == "dask" and n > 1:
            batches = np.array_split(np.arange(n), min(n, cfg.executor.n_workers))
            one = settings.model_copy(update={"n_workers": 1})
            futures = [self.runner.submit(named(label_task, f"{title} [{b + 1}/{len(batches)}]"),
                                          {"inputs": LabelInputs(configs.isel(config=idx), cache, configs),
                                           "settings": one})
                       for b, idx in enumerate(batches)]
            return concat([f.result().labels for f in futures])
        return named(label_task, title)(LabelInputs(configs, cache), settings).labels

    # -- reporting ------------------------------------------------------------------------------------------
    def publish(self, it: int, row: dict, metrics: xr.Dataset) -> None:
        from flows.artifacts import publish_plots

        cfg = self.config
        create_table_artifact(metrics_table(metrics), key=artifact_key(cfg.name, "metrics"),
                              description=f"campaign {cfg.name}: metrics per iteration")
        create_markdown_artifact(iteration_markdown(cfg.name, it, row, self.selection.threshold,
                                                    cfg.selection.break_threshold),
                                 key=artifact_key(cfg.name, "iteration"),
                                 description=f"campaign {cfg.name}: iteration {it}")
        try:
            if self.ui_plots:
                publish_plots(self.store, cfg.name, it)
        except Exception as exc:  # a plot must never stop a campaign; the files are complete without it
            self.log.warning("iteration %d: plots for the UI not published (%s: %s)", it, type(exc).__name__, exc)
        if self.progress_id is not None:
            total = cfg.stopping.max_iterations + 1
            update_progress_artifact(self.progress_id, min(100.0, 100.0 * (it + 1) / total))
        ensemble = (f", ensemble test force RMSE {row['ensemble_force_rmse_eV_per_A']:.4f} eV/Å"
                    if "ensemble_force_rmse_eV_per_A" in row else "")
        self.log.info("iteration %d: %d labels, test force RMSE %.4f eV/Å, energy RMSE %.2f meV/atom%s%s", it,
                      row["n_labels"], row.get("test_force_rmse_eV_per_A", np.nan),
                      row.get("test_energy_rmse_meV_per_atom", np.nan), ensemble,
                      f" → stop: {row['stop_reason']}" if row["stop_reason"] else "")


__all__ = ["Campaign", "active_learning", "budget_stop_lifted", "stop_after_selecting", "stop_before_exploring"]
