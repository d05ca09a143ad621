"""The ensemble test set (issue 16 §5, ``[ensemble_test]``): frames from HMC on the current potential at each
system's state points, labeled by the reference method, never fitted, reused while still representative, with
their errors in metrics.nc, ``pesflow status``, the learning curve and the stop rule.

The stage's pieces are checked on their own (burn-in, per-system draw, the Kolmogorov–Smirnov reuse test on a
known shift, random-centre cluster cuts); a two-system periodic argon campaign (``ase:lj``) runs end to end in
this process, and its ensemble set is recomputed from the stage functions with the campaign's random streams.
"""

from __future__ import annotations

import tomllib
import uuid

import numpy as np
import pytest

from flows.active_learning import stop_before_exploring
from flows.config import StoppingConfig, parse_config
from flows.store import CampaignStore
from hmc_core.configurations import make_configurations
from tasks.cluster_cuts import ClusterCutSettings
from tasks.ensemble_test import (
    EnsembleDrawInputs,
    EnsembleTestSettings,
    after_burn_in,
    cut_around,
    pick_frames,
    representative,
    run_ensemble_draw,
)
from tests.test_multi_system import TWO_SYSTEMS

RUN = uuid.uuid4().hex[:8]


class Harmonic:
    """E = k/2 Σ|x|² (eV, Å): a potential whose energies per atom are known in closed form."""

    cutoff = 5.0

    def evaluate(self, x, z, cell, pbc):
        return {"energy": 0.5 * float((x ** 2).sum()), "forces": -x}


def _frames(rng, n: int, scale: float, n_atoms: int = 4, system: str = "a") -> object:
    ds = make_configurations([rng.normal(scale=scale, size=(n_atoms, 3)) for _ in range(n)],
                             [np.full(n_atoms, 18)] * n)
    ds["frame"] = ("config", np.arange(n, dtype=np.int32))
    ds["system"] = ("config", np.array([system] * n))
    return ds


def test_burn_in_drops_the_first_fraction_of_each_chain():
    ds = _frames(np.random.default_rng(0), 8, 1.0)
    np.testing.assert_array_equal(after_burn_in(ds, 0.25), np.arange(2, 8))
    np.testing.assert_array_equal(after_burn_in(ds, 0.0), np.arange(8))
    np.testing.assert_array_equal(after_burn_in(ds, 0.99), [7])


def test_pick_frames_per_system_without_replacement():
    owner = np.array([0, 0, 1, 1, 1, 1, 0, 1])
    idx = pick_frames(owner, 2, 2, 7)
    assert list(owner[idx]) == [0, 0, 1, 1] and len(set(idx)) == 4
    np.testing.assert_array_equal(idx, pick_frames(owner, 2, 2, 7))  # the same seed, the same draw
    np.testing.assert_array_equal(pick_frames(owner, 2, 10, 1), [0, 1, 6, 2, 3, 4, 5, 7])  # fewer than asked: all
    with pytest.raises(ValueError, match="system 2 has no HMC frame"):
        pick_frames(owner, 3, 2, 0)


def test_representative_detects_a_shifted_ensemble():
    rng = np.random.default_rng(1)
    stored = _frames(rng, 100, 0.1)
    same = _frames(rng, 100, 0.1)
    hotter = _frames(rng, 100, 0.2)  # energies per atom 4× larger on average
    zeros = np.zeros(100, int)
    assert representative(Harmonic(), stored, zeros, same, zeros, 1)[0] > 0.01
    assert representative(Harmonic(), stored, zeros, hotter, zeros, 1)[0] < 1e-6
    assert representative(Harmonic(), stored, zeros, stored, zeros, 1)[0] == 1.0
    # a system with no stored frame must be redrawn
    assert representative(Harmonic(), stored, zeros, same, np.ones(100, int), 2).tolist() == [0.0, 0.0]


def test_draw_reuses_or_replaces_the_stored_set():
    rng = np.random.default_rng(2)
    chains = (_frames(rng, 20, 0.1), _frames(rng, 20, 0.1))
    stored = _frames(rng, 10, 0.1)
    far = _frames(rng, 10, 0.5)
    base = dict(chains=chains, system_of_chain=(0, 0), n_systems=1, potential=Harmonic())
    first = run_ensemble_draw(EnsembleDrawInputs(**base), EnsembleTestSettings(n_frames=6), 3)
    assert first.redraw and np.isnan(first.p_values).all() and first.frames.sizes["config"] == 6
    assert (first.frames["ensemble_chain"].values >= 0).all() and "frame" not in first.frames
    # burn-in: no frame from the first 25 % of a chain
    burnt = {(int(c), tuple(np.round(x[0], 12))) for c, x in zip(first.frames["ensemble_chain"].values,
                                                                first.frames["positions"].values, strict=True)}
    early = {(c, tuple(np.round(chains[c]["positions"].values[f, 0], 12))) for c in (0, 1) for f in range(5)}
    assert not burnt & early
    owner = np.zeros(10, int)
    keep = run_ensemble_draw(EnsembleDrawInputs(**base, stored=stored, stored_owner=owner),
                             EnsembleTestSettings(n_frames=6), 3)
    assert not keep.redraw and keep.p_values[0] >= 0.01
    always = run_ensemble_draw(EnsembleDrawInputs(**base, stored=stored, stored_owner=owner),
                               EnsembleTestSettings(n_frames=6, min_p_value=1.0), 3)
    assert always.redraw
    replaced = run_ensemble_draw(EnsembleDrawInputs(**base, stored=far, stored_owner=owner),
                                 EnsembleTestSettings(n_frames=6), 3)
    assert replaced.redraw and replaced.p_values[0] < 0.01
    never = run_ensemble_draw(EnsembleDrawInputs(**base, stored=far, stored_owner=owner),
                              EnsembleTestSettings(n_frames=6, min_p_value=0.0), 3)
    assert not never.redraw
    with pytest.raises(ValueError, match="2 chains but 1 system"):
        run_ensemble_draw(EnsembleDrawInputs(chains, (0,), 1, Harmonic()), EnsembleTestSettings(), 0)


def test_cut_around_random_atoms():
    from ase.build import bulk

    crystal = bulk("Ar", "fcc", a=5.30, cubic=True).repeat(3)
    frames = make_configurations([crystal.positions] * 2, [crystal.numbers] * 2, [crystal.cell.array] * 2,
                                 [(True,) * 3] * 2)
    clusters = cut_around(frames, 3, ClusterCutSettings(buffer=2.0), 5.0, 11)
    assert clusters.sizes["config"] == 6 and "centre_grade" not in clusters
    assert sorted(clusters["source_frame"].values.tolist()) == [0, 0, 0, 1, 1, 1]
    for frame in (0, 1):
        centres = clusters["centre_atom"].values[clusters["source_frame"].values == frame]
        assert len(set(centres.tolist())) == 3
    assert (clusters["n_core"].values >= 1).all() and not clusters["pbc"].values.any()
    again = cut_around(frames, 3, ClusterCutSettings(buffer=2.0), 5.0, 11)
    np.testing.assert_array_equal(again["centre_atom"].values, clusters["centre_atom"].values)


@pytest.mark.parametrize(("rmse", "expected"), [(0.05, True), (0.1, True), (0.1000001, False), (np.nan, False)])
def test_ensemble_error_target_stops(rmse, expected):
    stopping = StoppingConfig(max_iterations=5, ensemble_force_rmse_target=0.1)
    reason = stop_before_exploring(0, 10, np.nan, stopping, rmse)
    assert (reason is not None) == expected
    if expected:
        assert reason.startswith("error target reached: ensemble test force RMSE")
    assert stop_before_exploring(0, 10, 0.01, StoppingConfig(max_iterations=5, force_rmse_target=0.1),
                                 1.0).startswith("error target reached: test force")


ENSEMBLE = """
[ensemble_test]
n_frames = 3
n_chains = 1
n_samples = 8
burn_in = 0.25
min_p_value = 0.0
"""


@pytest.fixture(scope="module")
def ensemble_campaign(prefect_api, tmp_path_factory):
    from flows.active_learning import active_learning

    tmp = tmp_path_factory.mktemp("ensemble")
    path = tmp / "argon.toml"
    text = TWO_SYSTEMS.format(run=RUN).replace('name = "argon-', 'name = "ensemble-', 1) + ENSEMBLE
    path.write_text(text)
    summary = active_learning(config_path=str(path), directory=str(tmp / "run"), ui_plots=False)
    return tmp, summary


def test_ensemble_set_in_a_two_system_campaign(ensemble_campaign, capsys, monkeypatch):
    from ase.calculators.lj import LennardJones

    from flows.campaign_systems import plan_explore, system_index, tagged
    from flows.cli import main
    from flows.plots import learning_curve_figure
    from hmc_core.configurations import to_atoms
    from hmc_core.mtp import read_mtp
    from hmc_core.mtp.fit import prediction_errors
    from tasks.ase_labeler import LJParameters
    from tasks.cluster_cuts import exploration_starts
    from tasks.explore import ExploreInputs, run_explore

    tmp, summary = ensemble_campaign
    assert summary["finished"] and summary["reason"].startswith("iteration budget")
    cfg = parse_config(tomllib.loads((tmp / "argon.toml").read_text()), tmp / "argon.toml")
    store = CampaignStore(tmp / "run")
    metrics = store.read_metrics()

    # iteration 0 draws the set from HMC on potential 0 and labels it; min_p_value = 0 keeps it afterwards
    assert metrics["ensemble_drawn_at"].values.tolist() == [0, 0]
    assert metrics["ensemble_redrawn"].values.tolist() == [1, 0]
    assert metrics["ensemble_label_s"].values[0] > 0 and metrics["ensemble_label_s"].values[1] == 0
    assert metrics["ensemble_n"].values.tolist() == [6, 6]
    # sane candidates (issue 17 §3): no chain below 5 % acceptance, no exploded or squeezed frame here
    assert metrics["chains_low_acceptance"].values[0] == 0 and metrics["n_unphysical"].values[0] == 0

    # the frames are the stage functions' draw from the chains the campaign's streams give
    potential = read_mtp(store.path("potential.mtp", 0))
    labels0 = store.training_labels(0)
    es = cfg.ensemble_test
    hmc = cfg.hmc.model_copy(update={"n_starts": es.n_chains, "n_samples": es.n_samples})
    plan = plan_explore(cfg.model_copy(update={"hmc": hmc}), exploration_starts(labels0), 0)
    assert [c.name for c in plan] == ["crystal", "liquid", "liquid"]
    starts = exploration_starts(labels0)
    chains = tuple(tagged(run_explore(ExploreInputs(starts.isel(config=[c.start]), c.temperature, potential, None,
                                                    np.inf, c.pressure), hmc,
                                      cfg.stream("ensemble_chain", 0, *c.key)).frames, c.name) for c in plan)
    expected = run_ensemble_draw(EnsembleDrawInputs(chains, tuple(c.system for c in plan), 2, potential), es,
                                 cfg.stream("ensemble_pick", 0))
    frames = store.read_dataset("ensemble_frames.nc", 0)
    np.testing.assert_array_equal(frames["positions"].values, expected.frames["positions"].values)
    assert list(frames["system"].values) == ["crystal"] * 3 + ["liquid"] * 3
    assert system_index(frames, cfg).tolist() == [0, 0, 0, 1, 1, 1]
    assert set(frames["temperature"].values[3:]) <= {90.0, 120.0} and set(frames["temperature"].values[:3]) == {40.0}

    # labeled by the reference method (LJ argon, ASE's calculator called directly), and never fitted
    ens = store.read_dataset("ensemble_test.nc", 0)
    from flows.netcdf_units import missing_units

    assert missing_units(ens) == [] and missing_units(frames) == [] and missing_units(metrics) == []
    lj = LennardJones(**LJParameters().resolved())
    for k, atoms in enumerate(to_atoms(ens)):
        atoms.calc = lj
        np.testing.assert_allclose(ens["energy"].values[k], atoms.get_potential_energy(), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(ens["forces"].values[k, :32], atoms.get_forces(), rtol=1e-9, atol=1e-10)
    trained = store.read_labels()["positions"].values
    for x in ens["positions"].values:
        assert not np.any(np.all(np.isclose(trained[:, :32], x[None, :32]), axis=(1, 2)))
    assert metrics["n_labels"].values[1] == store.training_labels(1).sizes["config"]

    # the errors in metrics.nc are the potential's errors on that set, overall and per system
    for it in (0, 1):
        pot = read_mtp(store.path("potential.mtp", it))
        errors = prediction_errors(pot, ens)
        assert metrics["ensemble_force_rmse_eV_per_A"].values[it] == pytest.approx(errors["force_rmse_eV_per_A"])
        liquid = prediction_errors(pot, ens.isel(config=[3, 4, 5]))
        assert metrics["liquid.ensemble_force_rmse_eV_per_A"].values[it] == pytest.approx(
            liquid["force_rmse_eV_per_A"])

    # the iteration's log line, pesflow status and the learning curve show them
    capsys.readouterr()
    monkeypatch.setenv("COLUMNS", "250")  # one line per header
    assert main(["status", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert "ensemble F RMSE" in out and "ensemble of it" in out
    fig = learning_curve_figure(store)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "ensemble test set (HMC on the potential)" in legend and "ensemble: liquid" in legend


def test_readme_argon_example_passes_every_check(tmp_path):
    """The README's three-command path starts from flows/examples/argon_lj.toml: it loads and passes every check
    that runs before anything starts (structures, sets, cluster-cut cell widths, directory)."""
    from pathlib import Path

    from flows.config import load_config
    from flows.preflight import preflight

    path = Path(__file__).resolve().parents[1] / "flows" / "examples" / "argon_lj.toml"
    cfg = load_config(path)
    assert cfg.ensemble_test is not None and cfg.stopping.ensemble_force_rmse_target is not None
    assert cfg.labeling.labeler == "ase:lj" and cfg.potential.cutoff == pytest.approx(3 * 3.405)
    assert path.relative_to(path.parents[2]).as_posix() in (path.parents[2] / "README.md").read_text()
    preflight(cfg, tmp_path / "argon")
