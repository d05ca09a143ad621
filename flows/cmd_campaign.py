"""Campaign commands: ``run``, ``label``, ``fit``, ``status``, ``plot``, ``ui``, ``deploy``."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from flows.app import UserError, app, console


def campaign_environment() -> None:
    """Environment defaults (no telemetry, patience for server starts, passive OpenMP waits; see
    :func:`flows.server.configure_environment`) and the watchdog that takes worker processes (PySCF labels)
    down with the command even on ``kill -9`` (:mod:`flows.reaper`)."""
    from flows.reaper import watch_this_process
    from flows.server import configure_environment

    configure_environment()
    watch_this_process()


def _campaign_dir(directory: Path) -> Path:
    """``directory`` if it holds a campaign whose campaign.toml is a valid configuration, else a clear error."""
    from flows.config import load_config

    if not (directory / "campaign.toml").exists():
        raise FileNotFoundError(f"{directory} is not a campaign directory (no campaign.toml); "
                                "run `pesflow run CONFIG` first")
    load_config(directory / "campaign.toml")  # ConfigError names the file and what is wrong
    return directory


def print_summary(summary: dict, wall: float | None = None, split: dict[str, float] | None = None) -> None:
    """The iteration table of a campaign (from its metrics) and, with ``wall`` (s) and ``split`` (seconds per
    stage spent by this run), the wall-time split of this run."""
    rows = summary["metrics"]
    table = Table(title=f"campaign {summary['directory']}")
    ensemble = any("ensemble_force_rmse_eV_per_A" in r for r in rows)
    cols = [("iteration", "it", "{:d}"), ("n_labels", "labels", "{:.0f}"),
            ("test_energy_rmse_meV_per_atom", "test E RMSE (meV/atom)", "{:.2f}"),
            ("test_force_rmse_eV_per_A", "test F RMSE (eV/Å)", "{:.4f}"),
            *([("ensemble_force_rmse_eV_per_A", "ensemble F RMSE (eV/Å)", "{:.4f}"),
               ("ensemble_drawn_at", "ensemble of it", "{:.0f}"),
               ("ensemble_label_s", "ensemble labels (s)", "{:.1f}")] if ensemble else []),
            ("n_above_threshold", "frames γ>thr", "{:.0f}"), ("n_selected", "selected", "{:.0f}"),
            ("n_new_labels", "new labels", "{:.0f}"), ("n_failed", "failed", "{:.0f}"),
            ("n_pool", "frames", "{:.0f}"), ("chains_stopped", "chains stopped", "{:.0f}"),
            ("max_grade", "max γ", "{:.3g}"), ("iteration_s", "wall (s)", "{:.1f}")]
    for _, title, _ in cols:
        table.add_column(title, justify="right")
    for r in rows:
        cells = []
        for key, _, fmt in cols:
            v = r.get(key)
            cells.append("–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else fmt.format(v))
        table.add_row(*cells)
    out = Console(width=max(Console().width, 150))
    out.print(table)
    from flows.reporting import system_names

    systems = system_names(rows[-1]) if rows else []
    if systems:
        t = Table(title="per system")
        keys = [("n_labels", "labels", "{:.0f}"), ("test_energy_rmse_meV_per_atom", "test E RMSE (meV/atom)", "{:.2f}"),
                ("test_force_rmse_eV_per_A", "test F RMSE (eV/Å)", "{:.4f}"),
                *([("ensemble_force_rmse_eV_per_A", "ensemble F RMSE (eV/Å)", "{:.4f}")] if ensemble else []),
                ("train_force_rmse_eV_per_A", "train F RMSE (eV/Å)", "{:.4f}")]
        for title in ("it", "system", *(title for _, title, _ in keys)):
            t.add_column(title, justify="right")
        for r in rows:
            for name in systems:
                cells = [str(r["iteration"]), name]
                for key, _, fmt in keys:
                    v = r.get(f"{name}.{key}")
                    cells.append("–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else fmt.format(v))
                t.add_row(*cells)
        out.print(t)
    capped = [r["iteration"] for r in rows if r.get("fit_capped")]
    if capped:
        out.print(f"[yellow]warning:[/] the fits of iteration(s) {', '.join(map(str, capped))} stopped at their "
                  "iteration cap (\\[potential] max_iter) before converging; raise max_iter for converged fits")
    if summary.get("reason"):
        out.print(f"stopped: {summary['reason']}; {summary['n_ok_labels']} labels "
                  f"({summary['n_labels'] - summary['n_ok_labels']} failed); final potential: "
                  f"{summary['final_potential']}")
    if wall is not None and split is not None:
        split = {**split, "in-flow orchestration + I/O": max(0.0, wall - sum(split.values()))}
        t = Table(title="wall time per stage (this run)")
        t.add_column("stage")
        t.add_column("s", justify="right")
        t.add_column("%", justify="right")
        for name, sec in split.items():
            t.add_row(name, f"{sec:.1f}", f"{100 * sec / wall:.0f}")
        out.print(t)


@app.command()
def run(
    config: Path = typer.Argument(None, help="campaign TOML/YAML; omitted: the embedded default campaign"),
    directory: Path = typer.Option(None, "--dir", "-d", help="campaign directory (default: from the config)"),
    max_iterations: int = typer.Option(None, help="override [stopping] max_iterations"),
    plots: bool = typer.Option(True, help="write PNG plots into DIR/plots at the end"),
    ui_plots: bool = typer.Option(True, help="publish each iteration's learning curve and parity plot in the "
                                  "Prefect UI (about 1-3 s per iteration)"),
):
    """Run (or resume) an active-learning campaign; no CONFIG runs the embedded default."""
    campaign_environment()
    t0 = time.perf_counter()
    from flows.config import load_config
    from flows.preflight import preflight

    cfg = load_config(config)  # validated here, once: config errors are one line, before Prefect starts
    if max_iterations is not None:
        cfg = cfg.with_overrides(stopping={"max_iterations": max_iterations})
    cfg_dir = cfg.campaign_dir(directory)
    preflight(cfg, cfg_dir)
    from flows.active_learning import active_learning, nothing_to_do
    from flows.reporting import summarize
    from flows.store import CampaignStore

    store = CampaignStore(cfg_dir)
    if (reason := nothing_to_do(cfg, store)) is not None:  # answered without starting Prefect
        print_summary(summarize(store))
        console.print(f"campaign [bold]{cfg.name}[/] in {cfg_dir} already finished ({reason}); nothing to do: "
                      "raise --max-iterations or [stopping] max_labels to continue a budget stop")
        return
    console.print(f"campaign [bold]{cfg.name}[/] → {cfg_dir}")
    from flows.server import flow_server

    t_call = time.perf_counter()
    with flow_server():  # PREFECT_API_URL, a running `pesflow ui`, or a server of this run's own
        summary = active_learning(config=cfg, directory=str(cfg_dir), ui_plots=ui_plots)
    t_end = time.perf_counter()
    wall = t_end - t0
    outside = {"imports + config checks": t_call - t0,
               "Prefect start-up + flow-run bookkeeping": (t_end - t_call) - summary["flow_body_s"]}
    print_summary(summary, wall, {**outside, **summary["this_run_s"]})
    if plots:
        from flows.plots import plot_campaign

        written = plot_campaign(cfg_dir)
        console.print(f"plots: {', '.join(str(p) for p in written)}")
    console.print(f"wall time {wall:.1f} s")


def _validated(model, command: str, **values):
    """``model(**values)`` with pydantic's errors as one line naming the option, the value and the rule."""
    from pydantic import ValidationError

    try:
        return model(**values)
    except ValidationError as exc:
        parts = [(f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')} = {e.get('input')!r}: " if e["loc"]
                  else "") + e["msg"].removeprefix("Value error, ") for e in exc.errors()]  # no loc: a model check
        raise UserError(f"pesflow {command}: " + "; ".join(parts)) from None


def _json_table(text: str | None) -> dict:
    """``--parameters`` text: a JSON object (None = {}); UserError naming the option otherwise."""
    import json

    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UserError(f"pesflow label: --parameters = {text!r} is not JSON ({exc}); write e.g. "
                        "'{\"sigma\": 3.4, \"rc\": 8.5}'") from None
    if not isinstance(value, dict):
        raise UserError(f"pesflow label: --parameters = {text!r} must be a JSON object of keyword arguments, e.g. "
                        "'{\"sigma\": 3.4}'")
    return value


def _check_writable(path: Path, option: str) -> None:
    """Refuse, before any computation, an output path that cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path} is a directory; give a file name")
    from flows.preflight import writable_folder

    writable_folder(path.parent, f"the folder of {option} {path}:")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{option} {path} is not writable; choose another path")


@app.command()
def label(
    file: Path = typer.Argument(..., help="structures (any ASE format, or a configurations .nc)"),
    method: str = typer.Option("hf", help="hf, dft, mp2"),
    functional: str = typer.Option("pbe", help="DFT functional (method dft)"),
    basis: str = typer.Option("sto-3g"),
    charge: int = typer.Option(0),
    spin: int = typer.Option(0, help="2S = N_alpha − N_beta"),
    dispersion: str = typer.Option(None, help="d3bj or d4"),
    workers: int = typer.Option(2, help="parallel PySCF processes"),
    cache_dir: Path = typer.Option(Path("runs/label_cache"), help="persistent label cache"),
    out: Path = typer.Option(None, help="labels netCDF (default: FILE with suffix .labels.nc)"),
    species: str = typer.Option(None, help="elements of an MLIP .cfg file's atom types, type 0 first (e.g. Ar,Kr)"),
    labeler: str = typer.Option("pyscf", help="pyscf, ase:lj, ase:emt, ase:xtb, or ase (with --calculator)"),
    calculator: str = typer.Option(None, help="ASE calculator class package.module:ClassName (--labeler ase)"),
    parameters: str = typer.Option(None, help='ASE calculator keyword arguments as JSON, e.g. \'{"sigma": 3.4}\''),
):
    """Label structures with PySCF or an ASE calculator (energies eV, forces eV/Å) into an xarray dataset."""
    campaign_environment()
    from hmc_core.configurations import read_structures, write_netcdf
    from tasks.label import LabelSettings, check_batch, label_configurations

    if not file.exists():
        raise FileNotFoundError(f"no such structure file: {file}")
    values = dict(method=method, functional=functional, basis=basis, charge=charge, spin=spin, dispersion=dispersion,
                  density_fit=method == "dft", n_workers=workers)
    if labeler != "pyscf" or calculator is not None or parameters is not None:  # PySCF options are not theirs
        values = dict(labeler=labeler, calculator=calculator, parameters=_json_table(parameters), n_workers=workers)
    settings = _validated(LabelSettings, "label", **values)
    out = out or file.with_suffix(".labels.nc")
    _check_writable(out, "--out")
    configs = read_structures(file, species=species)
    check_batch(configs, settings)  # before the progress bar, so a refusal is one clean line
    n = configs.sizes["config"]
    from rich.progress import Progress

    t0 = time.perf_counter()
    with Progress(console=console, transient=True) as bar:
        job = bar.add_task(f"labeling {n} configurations", total=n)
        labels = label_configurations(configs, settings, cache_dir=cache_dir, n_workers=workers,
                                      progress=lambda *a: bar.advance(job))
    write_netcdf(labels, out)
    status = labels["status"].values.astype(str) if "status" in labels else np.array(["ok"] * n)
    console.print(f"{int(np.sum(status == 'ok'))} of {n} labeled ({int(np.sum(status != 'ok'))} failed) in "
                  f"{time.perf_counter() - t0:.1f} s → {out}")


@app.command()
def fit(
    directory: Path = typer.Argument(..., help="campaign directory (uses its labels.nc and [potential])"),
    out: Path = typer.Option(None, help="output .mtp (default: DIR/refit.mtp)"),
    level: int = typer.Option(None, help="override [potential] level"),
):
    """Fit an MTP on all successful labels of a campaign and report train and held-out errors."""
    campaign_environment()
    from flows.config import load_config
    from flows.store import CampaignStore
    from hmc_core.mtp import write_mtp
    from hmc_core.mtp.fit import prediction_errors, usable_labels
    from tasks.fit import run_fit

    store = CampaignStore(_campaign_dir(directory))
    cfg = load_config(store.config_path)
    if level is not None:
        cfg = cfg.with_overrides(potential={"level": level})
    out = out or store.path("refit.mtp")
    _check_writable(out, "--out")
    labels = store.read_labels()
    if labels is None:
        raise UserError(f"{directory} has no labels yet (labels.nc)")
    labels = usable_labels(labels)
    p = cfg.potential
    t0 = time.perf_counter()
    potential = run_fit(labels, p, cfg.stream("fit")).potential
    write_mtp(potential, out)
    table = Table(title=f"MTP level {p.level} on {labels.sizes['config']} labels "
                        f"({time.perf_counter() - t0:.1f} s) → {out}")
    for c in ("set", "E RMSE meV/atom", "E MAE meV/atom", "F RMSE eV/Å", "F MAE eV/Å"):
        table.add_column(c, justify="right")
    sets = [("train", labels)]
    if store.has("test_set.nc"):
        sets.append(("test", store.read_dataset("test_set.nc")))
    for name, ds in sets:
        e = prediction_errors(potential, ds)
        table.add_row(name, f"{e['energy_rmse_meV_per_atom']:.3f}", f"{e['energy_mae_meV_per_atom']:.3f}",
                      f"{e['force_rmse_eV_per_A']:.4f}", f"{e['force_mae_eV_per_A']:.4f}")
    Console().print(table)


@app.command()
def status(directory: Path = typer.Argument(..., help="campaign directory")):
    """Iteration table of a campaign (finished, running or interrupted)."""
    campaign_environment()
    from flows.reporting import summarize
    from flows.store import STAGES, CampaignStore

    store = CampaignStore(_campaign_dir(directory))
    summary = summarize(store)
    print_summary(summary)
    from flows.production import production_status

    if line := production_status(store.root):
        console.print(line)
    if not summary["finished"]:
        its = store.iterations()
        if its:
            last = its[-1]
            done = [s for s in STAGES if store.stage_done(s, last) is not None]
            console.print(f"not finished: iteration {last}, stages done: {', '.join(done) or 'none'} "
                          "(run the same command again to resume)")
        else:
            console.print("not finished: no iteration yet (starting set being labeled?)")


@app.command()
def plot(directory: Path = typer.Argument(..., help="campaign directory"),
         out: Path = typer.Option(None, help="folder for the PNGs (default: DIR/plots)")):
    """Learning curve, parity plots, HMC energy traces and grade histograms as PNG."""
    from flows.plots import plot_campaign

    written = plot_campaign(_campaign_dir(directory), out)
    for p in written:
        console.print(str(p))


@app.command()
def ui(port: int = typer.Option(4200, help="port on 127.0.0.1"),
       prefect_home: Path = typer.Option(None, help="Prefect home (database) of the server; default: "
                                                    "$PESFLOW_HOME/prefect, i.e. ~/.pesflow/prefect")):
    """Start the Prefect server and UI on 127.0.0.1 (Ctrl-C or kill -TERM stops both). pesflow commands with the
    same PESFLOW_HOME report to it; other clients: PREFECT_API_URL=http://127.0.0.1:PORT/api. CSRF protection
    is on and CORS admits only the UI's own origin; set PREFECT_SERVER_API_AUTH_STRING=user:password for basic
    auth (clients then need PREFECT_API_AUTH_STRING)."""
    from flows.server import serve_ui

    raise SystemExit(serve_ui(port, prefect_home))


@app.command()
def deploy(
    pool: str = typer.Option("pesflow-process", help="process work pool (created if missing)"),
    cron: str = typer.Option(None, help="override the cron schedule of the recurring deployment"),
    config: Path = typer.Option(None, help="campaign config for the deployments (default: embedded)"),
    directory: Path = typer.Option(None, "--dir", help="campaign directory the nightly run continues"),
    timezone: str = typer.Option(None, "--timezone",
                                 help="IANA time zone of the cron, e.g. Europe/Berlin (default: this machine's)"),
):
    """Register the deployments of deployments/ on the Prefect server named by PREFECT_API_URL.

    The nightly schedule runs in an explicit time zone (--timezone, else the machine's local zone, else UTC),
    printed with the deployment ids."""
    campaign_environment()
    path = Path(__file__).resolve().parents[1] / "deployments" / "register.py"
    if not path.exists():
        raise UserError(f"{path} not found: `pesflow deploy` registers the deployments of a source checkout")
    import importlib.util

    spec = importlib.util.spec_from_file_location("pesflow_deployments", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        zone, origin = module.schedule_timezone(timezone)
    except module.TimezoneError as exc:
        raise UserError(f"--timezone: {exc}") from None
    if not os.environ.get("PREFECT_API_URL"):
        raise UserError("PREFECT_API_URL is not set: start a server (`pesflow ui`) and export "
                        "PREFECT_API_URL=http://127.0.0.1:4200/api")
    ids = module.register(pool=pool, cron=cron, config_path=config, directory=directory, timezone=zone)
    for name, dep_id in ids.items():
        console.print(f"deployment {name}: {dep_id}")
    console.print(f"nightly-continuation schedule: cron '{cron or module.NIGHTLY_CRON}' in time zone {zone} "
                  f"({origin})")
    console.print(f"start a worker: prefect worker start --pool {pool}")
