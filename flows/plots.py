"""PNG plots of a campaign directory: learning curve, parity, HMC energy traces, grade histograms, reliability.

Each plot has a ``*_figure(store, …)`` function that returns the matplotlib Figure (or None when the data are
not there yet), so tests and the Prefect artifacts (``flows/artifacts.py``) can use the figure itself; the
plain-named functions write it as PNG. Units follow the tables: energies per atom in meV/atom, forces in eV/Å,
temperatures in K, HMC energies in eV.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flows.reporting import system_names
from flows.store import CampaignStore


def plot_campaign(directory: str | Path, out: str | Path | None = None) -> list[Path]:
    """Write ``learning_curve.png``, ``parity.png``, ``energy_traces.png``, ``grade_histograms.png``,
    ``reliability.png`` (those the data allow) into ``out`` (default ``<directory>/plots``); returns the paths
    written."""
    store = CampaignStore(directory)
    out = Path(out) if out else store.root / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for fn in (learning_curve, parity, energy_traces, grade_histograms, reliability):
        path = fn(store, out)
        if path is not None:
            written.append(path)
    return written


def _figure(*args, **kwargs):
    """A Figure with constrained layout (labels and titles never overlap) that is not registered with pyplot
    (no global state; freed when dropped)."""
    from matplotlib.figure import Figure

    return Figure(*args, layout="constrained", **kwargs)


def save_png(fig, path: Path, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG atomically (temporary file + rename)."""
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=dpi)
    tmp.replace(path)
    return path


def _integer_ticks(axis) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _name(store: CampaignStore) -> str:
    from flows.config import load_config

    try:
        return load_config(store.config_path).name
    except (OSError, ValueError):
        return store.root.name


def _method(store: CampaignStore) -> str:
    """The reference method of the labels, e.g. 'PySCF HF/sto-3g' or 'ASE ase:lj (LennardJones)'."""
    labels = store.read_labels()
    if labels is None:
        return "PySCF"
    labeler = str(labels.attrs.get("label_labeler", ""))
    if labeler.startswith("ase"):
        return f"ASE {labeler} ({str(labels.attrs.get('label_calculator', '')).rpartition(':')[2]})"
    method = str(labels.attrs.get("label_method", "")).upper()
    if method == "DFT":
        method = str(labels.attrs.get("label_functional", "DFT"))
    basis = labels.attrs.get("label_basis")
    return f"PySCF {method}/{basis}" if basis else f"PySCF {method}".strip()


def learning_curve_figure(store: CampaignStore, upto: int | None = None):
    """Test (and training) force and energy RMSE against the number of labels (and each system's test errors),
    and labels per iteration;
    only iterations ≤ ``upto`` when given. None without metrics."""
    m = store.read_metrics()
    if m is None or "n_labels" not in m:
        return None
    if upto is not None:
        m = m.sel(iteration=m["iteration"] <= upto)
        if m.sizes["iteration"] == 0:
            return None
    fig = _figure(figsize=(13, 4))
    ax = fig.subplots(1, 3)
    n = m["n_labels"].values
    styles = {"test": ("o-", "test set (held out)"), "ensemble": ("D-", "ensemble test set (HMC on the potential)"),
              "train": ("s--", "training labels")}
    for prefix, (style, name) in styles.items():
        if f"{prefix}_force_rmse_eV_per_A" in m:
            ax[0].plot(n, m[f"{prefix}_force_rmse_eV_per_A"].values, style, label=name)
            ax[1].plot(n, m[f"{prefix}_energy_rmse_meV_per_atom"].values, style, label=name)
    for system in system_names(m.data_vars):  # per-system test errors of a several-system campaign
        for a, key in ((ax[0], "test_force_rmse_eV_per_A"), (ax[1], "test_energy_rmse_meV_per_atom"),
                       (ax[0], "ensemble_force_rmse_eV_per_A")):
            if f"{system}.{key}" in m:
                a.plot(n, m[f"{system}.{key}"].values, ".:", label=f"{key.split('_', 1)[0]}: {system}")
    ax[0].set(xlabel="labels in the fit (count)", ylabel="force RMSE (eV/Å)", yscale="log",
              title="force error of the MTP vs PySCF")
    ax[1].set(xlabel="labels in the fit (count)", ylabel="energy RMSE (meV/atom)", yscale="log",
              title="energy error of the MTP vs PySCF")
    for a in ax[:2]:
        _integer_ticks(a.xaxis)
        a.legend(fontsize=8)
    it = m["iteration"].values
    ax[2].bar(it, n, color="tab:blue", alpha=0.6, label="labels in the fit")
    if "n_selected" in m:
        sel = m["n_selected"].values
        ok = np.isfinite(sel)
        ax[2].plot(it[ok], sel[ok], "ko-", label="candidates selected")
    ax[2].set(xlabel="iteration", ylabel="configurations (count)", title="labels per iteration")
    _integer_ticks(ax[2].xaxis)
    _integer_ticks(ax[2].yaxis)
    ax[2].legend(fontsize=8)
    fig.suptitle(f"campaign {_name(store)}: learning curve ({_method(store)} labels)")
    return fig


def learning_curve(store: CampaignStore, out: Path) -> Path | None:
    fig = learning_curve_figure(store)
    return None if fig is None else save_png(fig, out / "learning_curve.png")


def parity_figure(store: CampaignStore, iteration: int | None = None):
    """The potential of ``iteration`` (default: ``final.mtp``) against PySCF on the held-out test set (or on the
    labels when there is none): energy per atom (meV/atom, relative to the set's mean) and force components
    (eV/Å). None without a potential or usable configurations."""
    from hmc_core.mtp import read_mtp
    from hmc_core.mtp.fit import predict, usable_labels

    path = store.path("final.mtp") if iteration is None else store.path("potential.mtp", iteration)
    if not path.exists():
        return None
    pot = read_mtp(path, below_min_dist="allow")
    test = store.has("test_set.nc")
    ds = usable_labels(store.read_dataset("test_set.nc") if test else store.read_labels())
    if ds.sizes["config"] == 0:
        return None
    pred = predict(pot, ds)
    n = ds["n_atoms"].values
    e_ref, e_pred = 1000.0 * ds["energy"].values / n, 1000.0 * pred["energy"] / n  # meV/atom
    mask = np.arange(ds.sizes["atom"])[None, :] < n[:, None]
    f_ref, f_pred = ds["forces"].values[mask].ravel(), pred["forces"][mask].ravel()
    fig = _figure(figsize=(10, 4.6))
    ax = fig.subplots(1, 2)
    shift = e_ref.mean()
    method = _method(store)
    for a, (x, y, unit, what) in zip(ax, ((e_ref - shift, e_pred - shift, "meV/atom", "energy − set mean"),
                                          (f_ref, f_pred, "eV/Å", "force component")), strict=True):
        lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
        rmse = np.sqrt(np.mean((x - y) ** 2))
        a.plot([lo, hi], [lo, hi], "k-", lw=0.8, label="y = x")
        a.plot(x, y, ".", ms=5, label=f"{len(x)} values, RMSE {rmse:.3g} {unit}")
        a.set(xlabel=f"{method} {what} ({unit})", ylabel=f"MTP {what} ({unit})", aspect="equal")
        a.legend(fontsize=8, loc="upper left")
    which = "final potential" if iteration is None else f"potential of iteration {iteration}"
    level = getattr(pot.basis, "level", None)
    name = f"MTP level {level}" if level is not None else "MTP"
    where = f"test set ({ds.sizes['config']} configurations)" if test else f"labels ({ds.sizes['config']})"
    fig.suptitle(f"parity on the {where}: {name}, {which}, vs {method}")
    return fig


def parity(store: CampaignStore, out: Path) -> Path | None:
    fig = parity_figure(store)
    return None if fig is None else save_png(fig, out / "parity.png")


def _chain_starts(store: CampaignStore, iteration: int) -> dict[int, int]:
    """chain index → starting configuration index, from samples.nc (empty if unknown)."""
    if not store.has("samples.nc", iteration):
        return {}
    s = store.read_dataset("samples.nc", iteration)
    if "chain" not in s or "start" not in s:
        return {}
    return {int(c): int(st) for c, st in zip(s["chain"].values, s["start"].values, strict=True)}


def energy_traces_figure(store: CampaignStore):
    """HMC potential energy (eV) of every chain against the trajectory number, one panel per iteration; the
    legend names each chain by its start and temperature (K)."""
    its = [i for i in store.iterations() if store.has("trajectories.nc", i)]
    if not its:
        return None
    fig = _figure(figsize=(max(6.0, 4.2 * len(its)), 4.0))
    axes = np.atleast_1d(fig.subplots(1, len(its), squeeze=False)[0])
    for a, i in zip(axes, its, strict=True):
        tr = store.read_dataset("trajectories.nc", i)
        starts = _chain_starts(store, i)
        for c in range(tr.sizes["chain"]):
            start = f"start {starts[c]}" if c in starts else f"chain {c}"
            a.plot(np.arange(1, tr.sizes["sample"] + 1), tr["potential_energy"].values[c], lw=0.8,
                   label=f"{start}, {tr['temperature'].values[c]:g} K")
        a.set(title=f"iteration {i}", xlabel="HMC trajectory (count)", ylabel="potential energy (eV)")
        a.ticklabel_format(axis="y", useOffset=False)
        _integer_ticks(a.xaxis)
        a.legend(fontsize=7)
    fig.suptitle(f"campaign {_name(store)}: HMC chains on each iteration's MTP")
    return fig


def energy_traces(store: CampaignStore, out: Path) -> Path | None:
    fig = energy_traces_figure(store)
    return None if fig is None else save_png(fig, out / "energy_traces.png")


def grade_histograms_figure(store: CampaignStore):
    """Extrapolation grades (dimensionless) of the explored frames per iteration (log bins), with the
    selection and break thresholds as labelled lines."""
    from flows.config import load_config

    its = [i for i in store.iterations() if store.has("samples.nc", i)]
    if not its:
        return None
    grades = [store.read_dataset("samples.nc", i)["grade"].values for i in its]
    finite = np.concatenate([g[np.isfinite(g)] for g in grades])
    if finite.size == 0:
        return None
    cfg = load_config(store.config_path)
    fig = _figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    bins = np.logspace(np.log10(max(finite.min(), 1e-3)), np.log10(max(finite.max(), 10.0)) + 0.1, 40)
    for i, g in zip(its, grades, strict=True):
        ax.hist(g[np.isfinite(g)], bins=bins, histtype="step", label=f"iteration {i} ({np.isfinite(g).sum()})")
    ax.axvline(cfg.selection.threshold, color="k", ls="--", lw=1,
               label=f"selection threshold γ = {cfg.selection.threshold:g}")
    ax.axvline(cfg.selection.break_threshold, color="k", ls=":", lw=1,
               label=f"break threshold γ = {cfg.selection.break_threshold:g}")
    ax.set(xscale="log", xlabel="extrapolation grade γ (dimensionless)", ylabel="frames (count)",
           title=f"campaign {_name(store)}: grades of the explored frames")
    _integer_ticks(ax.yaxis)
    ax.legend(fontsize=7)
    return fig


def grade_histograms(store: CampaignStore, out: Path) -> Path | None:
    fig = grade_histograms_figure(store)
    return None if fig is None else save_png(fig, out / "grade_histograms.png")


def reliability_figure(store: CampaignStore):
    """The grade → force-error calibration of the last iteration that has one (:mod:`flows.calibration`): every
    (grade, actual force error) pair, coloured by the iteration that made it, the power law's median and its
    68 % / 95 % bands (log-log), and the held-out coverage in the title. None without a calibration."""
    from flows.calibration import NAME
    from hmc_core.uncertainty.calibration import PowerLawCalibration

    its = [i for i in store.iterations() if store.has(NAME, i)]
    content = next((c for c in (store.read_json(NAME, i) for i in reversed(its)) if c.get("calibration")), None)
    if content is None:
        return None
    cal = PowerLawCalibration(**content["calibration"])
    pairs = content["pairs"]
    g, e = np.asarray(pairs["grade"], float), np.asarray(pairs["error"], float)
    fig = _figure(figsize=(6, 4.5))
    ax = fig.subplots()
    points = ax.scatter(g, e, c=pairs["iteration"], s=14, cmap="viridis", label="labels (grade when selected)")
    fig.colorbar(points, ax=ax, label="iteration of the prediction")
    u = np.geomspace(max(min(g[np.isfinite(g) & (g > 0)], default=1.0), 1e-3), max(g[np.isfinite(g)], default=2.0), 100)
    ax.plot(u, cal.median(u), "k-", label=f"median: {cal.a:.3g}·γ^{cal.b:.3g}")
    for level, alpha in ((0.68, 0.3), (0.95, 0.15)):
        lo, hi = cal.band(u, level)
        ax.fill_between(u, lo, hi, color="tab:red", alpha=alpha, label=f"{level:.0%} band")
    held = content.get("heldout_coverage_95")
    title = f"grade calibration ({cal.n} pairs"
    title += f"; held-out 95 % coverage {held:.2f} on {content['n_heldout']})" if held is not None else ")"
    ax.set(xscale="log", yscale="log", xlabel="extrapolation grade γ", ylabel="force RMSE of the label (eV/Å)",
           title=title)
    ax.legend(fontsize=8)
    return fig


def reliability(store: CampaignStore, out: Path) -> Path | None:
    fig = reliability_figure(store)
    return None if fig is None else save_png(fig, out / "reliability.png")
