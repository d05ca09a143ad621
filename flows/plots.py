"""PNG plots of a campaign directory: learning curve, parity, HMC energy traces, grade histograms."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flows.store import CampaignStore


def plot_campaign(directory: str | Path, out: str | Path | None = None) -> list[Path]:
    """Write ``learning_curve.png``, ``parity.png``, ``energy_traces.png``, ``grade_histograms.png`` (those the
    data allow) into ``out`` (default ``<directory>/plots``); returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    store = CampaignStore(directory)
    out = Path(out) if out else store.root / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for fn in (learning_curve, parity, energy_traces, grade_histograms):
        path = fn(store, out)
        if path is not None:
            written.append(path)
    return written


def _save(fig, path: Path) -> Path:
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    tmp.replace(path)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def learning_curve(store: CampaignStore, out: Path) -> Path | None:
    """Held-out (and training) force and energy RMSE against the number of labels; labels per iteration."""
    import matplotlib.pyplot as plt

    m = store.read_metrics()
    if m is None or "n_labels" not in m:
        return None
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
    n = m["n_labels"].values
    for prefix, style in (("test", "o-"), ("train", "s--")):
        if f"{prefix}_force_rmse_eV_per_A" in m:
            ax[0].plot(n, m[f"{prefix}_force_rmse_eV_per_A"].values, style, label=prefix)
            ax[1].plot(n, m[f"{prefix}_energy_rmse_meV_per_atom"].values, style, label=prefix)
    ax[0].set(xlabel="labels", ylabel="force RMSE (eV/Å)", yscale="log", title="force error")
    ax[1].set(xlabel="labels", ylabel="energy RMSE (meV/atom)", yscale="log", title="energy error")
    ax[0].legend()
    ax[1].legend()
    ax[2].bar(m["iteration"].values, n, color="tab:blue", label="labels in fit")
    if "n_selected" in m:
        ax[2].plot(m["iteration"].values, np.nan_to_num(m["n_selected"].values), "ko-", label="selected")
    ax[2].set(xlabel="iteration", ylabel="count", title="labels per iteration")
    ax[2].legend()
    return _save(fig, out / "learning_curve.png")


def parity(store: CampaignStore, out: Path) -> Path | None:
    """Final potential against PySCF on the held-out set (or the labels): energies per atom and forces."""
    import matplotlib.pyplot as plt

    from hmc_core.mtp import read_mtp
    from hmc_core.mtp.fit import predict, usable_labels

    if not store.path("final.mtp").exists():
        return None
    pot = read_mtp(store.path("final.mtp"), below_min_dist="allow")
    ds = store.read_dataset("test_set.nc") if store.has("test_set.nc") else store.read_labels()
    ds = usable_labels(ds)
    if ds.sizes["config"] == 0:
        return None
    pred = predict(pot, ds)
    n = ds["n_atoms"].values
    e_ref, e_pred = ds["energy"].values / n, pred["energy"] / n
    mask = np.arange(ds.sizes["atom"])[None, :] < n[:, None]
    f_ref, f_pred = ds["forces"].values[mask].ravel(), pred["forces"][mask].ravel()
    fig, ax = plt.subplots(1, 2, figsize=(9, 4))
    shift = e_ref.mean()
    for a, (x, y, unit, what) in zip(ax, ((e_ref - shift, e_pred - shift, "eV/atom", "energy − mean"),
                                          (f_ref, f_pred, "eV/Å", "force components")), strict=True):
        lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
        a.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        a.plot(x, y, ".", ms=4)
        rmse = np.sqrt(np.mean((x - y) ** 2))
        a.set(xlabel=f"PySCF {what} ({unit})", ylabel=f"MTP ({unit})", title=f"RMSE {rmse:.3g} {unit}")
    return _save(fig, out / "parity.png")


def energy_traces(store: CampaignStore, out: Path) -> Path | None:
    """HMC potential energy of every chain, one panel per iteration."""
    import matplotlib.pyplot as plt

    its = [i for i in store.iterations() if store.has("trajectories.nc", i)]
    if not its:
        return None
    fig, axes = plt.subplots(1, len(its), figsize=(3.5 * len(its), 3.2), squeeze=False, sharey=False)
    for a, i in zip(axes[0], its, strict=True):
        tr = store.read_dataset("trajectories.nc", i)
        for c in range(tr.sizes["chain"]):
            a.plot(tr["potential_energy"].values[c], lw=0.8, label=f"{tr['temperature'].values[c]:g} K")
        a.set(title=f"iteration {i}", xlabel="HMC trajectory", ylabel="potential energy (eV)")
    axes[0][0].legend(fontsize=7)
    return _save(fig, out / "energy_traces.png")


def grade_histograms(store: CampaignStore, out: Path) -> Path | None:
    """Extrapolation grades of the explored frames per iteration (log bins), with the thresholds."""
    import matplotlib.pyplot as plt

    from flows.config import load_config

    its = [i for i in store.iterations() if store.has("samples.nc", i)]
    if not its:
        return None
    cfg = load_config(store.config_path)
    fig, ax = plt.subplots(figsize=(6, 4))
    grades = [store.read_dataset("samples.nc", i)["grade"].values for i in its]
    finite = np.concatenate([g[np.isfinite(g)] for g in grades])
    if finite.size == 0:
        plt.close(fig)
        return None
    bins = np.logspace(np.log10(max(finite.min(), 1e-3)), np.log10(max(finite.max(), 10.0)) + 0.1, 40)
    for i, g in zip(its, grades, strict=True):
        ax.hist(g[np.isfinite(g)], bins=bins, histtype="step", label=f"iteration {i}")
    for v, name in ((cfg.selection.threshold, "select"), (cfg.selection.break_threshold, "break")):
        ax.axvline(v, color="k", ls="--" if name == "select" else ":", lw=1)
    ax.set(xscale="log", xlabel="extrapolation grade γ", ylabel="frames", title="grades of explored frames")
    ax.legend(fontsize=7)
    return _save(fig, out / "grade_histograms.png")
