"""Campaign plots fit for a paper (issue 23 §4): units on every axis, integer iteration ticks, legends that name
each chain and the thresholds, parity in meV/atom like the tables, titles naming the set and the potential.
Asserted on the matplotlib objects' text, and the PNGs are written."""

from __future__ import annotations

import pytest
from tiny_campaign import tiny_campaign

from flows.plots import (
    energy_traces_figure,
    grade_histograms_figure,
    learning_curve_figure,
    parity_figure,
    plot_campaign,
)
from flows.store import CampaignStore


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return CampaignStore(tiny_campaign(tmp_path_factory))


def _has_unit(label: str) -> bool:
    if label == "iteration":  # an index: integer ticks, no unit
        return True
    return "(" in label and label.rstrip().endswith(")")


def _legend(ax) -> list[str]:
    legend = ax.get_legend()
    assert legend is not None
    return [t.get_text() for t in legend.get_texts()]


def _check_axes(fig):
    for ax in fig.axes:
        assert _has_unit(ax.get_xlabel()), ax.get_xlabel()
        assert _has_unit(ax.get_ylabel()), ax.get_ylabel()
    assert fig.get_layout_engine() is not None  # constrained layout: labels and titles do not collide


def test_learning_curve(store):
    fig = learning_curve_figure(store)
    _check_axes(fig)
    force, energy, counts = fig.axes
    assert force.get_ylabel() == "force RMSE (eV/Å)" and energy.get_ylabel() == "energy RMSE (meV/atom)"
    assert "test set (held out)" in _legend(force) and "training labels" in _legend(energy)
    assert counts.get_xlabel() == "iteration"
    fig.canvas.draw()
    ticks = [t for t in counts.get_xticks() if counts.get_xlim()[0] <= t <= counts.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert "PySCF HF/sto-3g" in fig.get_suptitle()
    assert learning_curve_figure(store, upto=0).axes[2].patches  # the per-iteration version for artifacts


def test_parity_in_table_units(store):
    import xarray as xr

    fig = parity_figure(store)
    _check_axes(fig)
    energy, force = fig.axes
    assert "(meV/atom)" in energy.get_xlabel() and "(meV/atom)" in energy.get_ylabel()
    assert "(eV/Å)" in force.get_xlabel()
    title = fig.get_suptitle()
    assert "test set (4 configurations)" in title and "MTP level 6" in title and "HF/sto-3g" in title
    # the RMSE in the legend is the table's test energy RMSE (meV/atom) of the final iteration
    metrics = xr.open_dataset(store.metrics_path)
    table = float(metrics["test_energy_rmse_meV_per_atom"].values[-1])
    legend = next(t for t in _legend(energy) if "RMSE" in t)
    assert f"RMSE {table:.3g} meV/atom" in legend
    assert "iteration 0" in parity_figure(store, iteration=0).get_suptitle()


def test_energy_traces_name_each_chain(store):
    fig = energy_traces_figure(store)
    _check_axes(fig)
    names = _legend(fig.axes[0])
    assert len(names) == 2 and all(n.startswith("start ") and n.endswith(" 600 K") for n in names)
    assert len(set(names)) == 2


def test_grade_histograms_thresholds_in_legend(store):
    fig = grade_histograms_figure(store)
    _check_axes(fig)
    names = _legend(fig.axes[0])
    assert "selection threshold γ = 1.1" in names and "break threshold γ = 10" in names


def test_pngs_written(store, tmp_path):
    written = plot_campaign(store.root, tmp_path)
    assert sorted(p.name for p in written) == ["energy_traces.png", "grade_histograms.png", "learning_curve.png",
                                               "parity.png"]
    for p in written:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
