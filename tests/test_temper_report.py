"""``pesflow temper`` says whether the run mixed: round trips per replica, swap rates per pair, a verdict,
and lj38.nc-style output carrying seed, ladder, n_steps, radius and units (issue 23 §3)."""

import numpy as np
import pytest
import xarray as xr

from flows.cli import main
from hmc_core.replica_exchange import equilibration_verdict, walker_round_trips


def test_walker_round_trips_counts_bottom_top_bottom():
    # 3 rungs; walker 0 goes 0 → 1 → 2 → 1 → 0 (one trip), walker 2 goes 2 → 0 → 2 → 0 (one trip: from its
    # first bottom visit), walker 1 never reaches the top
    walker_at = np.array([[1, 0, 2], [1, 2, 0], [2, 1, 0], [2, 0, 1], [0, 2, 1], [2, 0, 1], [0, 1, 2],
                          [2, 1, 0]])
    np.testing.assert_array_equal(walker_round_trips(walker_at), [1, 0, 1])
    with pytest.raises(ValueError, match="walker_at"):
        walker_round_trips(np.zeros(4, int))


def test_verdict_criteria():
    ok = equilibration_verdict([1, 2, 1], [0.3, 0.2])
    assert ok.equilibrated and ok.text.startswith("equilibrated")
    bad = equilibration_verdict([0, 2, 1], [0.3, 0.07])
    assert not bad.equilibrated
    assert "NOT EQUILIBRATED" in bad.text and "0.07" in bad.text and "1 of 3 replicas" in bad.text


def test_under_run_ladder_is_called_not_equilibrated(tmp_path, capsys):
    out = tmp_path / "lj13.nc"
    # 13 atoms, 3 rungs far apart, 15 sweeps: too short for every replica to go bottom → top → bottom
    assert main(["temper", "--atoms", "13", "--rungs", "3", "--t-min", "0.05", "--t-max", "0.5", "--sweeps", "15",
                 "--warmup", "2", "--n-steps", "3", "--seed", "4", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    text = " ".join((captured.out + captured.err).split())
    assert "NOT EQUILIBRATED" in text and "round trip per replica" in text and "swap rate" in text
    assert "global minimum -44.327 ε" in text
    with xr.open_dataset(out) as ds:
        assert ds.attrs["equilibrated"] == 0 and "NOT EQUILIBRATED" in ds.attrs["verdict"]
        assert ds.attrs["seed"] == 4 and ds.attrs["n_steps"] == 3 and ds.attrs["radius"] == 2.25
        assert ds.attrs["radius_units"] == "σ" and "ε" in ds.attrs["units"]
        np.testing.assert_allclose(ds.attrs["ladder"], ds["temperature"].values)
        assert ds["temperature"].attrs["units"] == "ε/k_B" and ds["heat_capacity"].attrs["units"] == "k_B"
        assert ds["walker_round_trips"].attrs["units"] == "count" and ds.sizes["walker"] == 3
        assert ds["walker_round_trips"].values.min() == 0
        assert ds["swap_rate"].sizes["pair"] == 2 and ds["swap_rate"].attrs["units"] == "1"
        for name, var in ds.data_vars.items():
            assert "units" in var.attrs, name


def test_walker_round_trips_agree_with_the_running_count():
    """On a real run (LJ7, 4 rungs, 400 sweeps) the per-walker counts add up to the sampler's own round-trip
    record (which starts counting after the first sweep, so it may miss walker 0's first trip) and give an
    "equilibrated" verdict."""
    from hmc_core.hmc import HMCConfig
    from hmc_core.potentials import ForceField
    from hmc_core.potentials.lj_cluster import LennardJonesCluster, minimize_cluster
    from hmc_core.replica_exchange import ReplicaExchange, geometric_ladder

    potential = LennardJonesCluster(radius=2.0, stiffness=200.0)
    species = np.ones(7, int)
    start = minimize_cluster(potential, np.random.default_rng(1).uniform(-1, 1, (7, 3)), max_iter=50)[1]
    cfg = HMCConfig(temperature=0.2, dt=0.02, n_steps=5, units="lj", n_warmup=10)
    result = ReplicaExchange(lambda: ForceField(potential, species), cfg, geometric_ladder(0.2, 0.5, 4)).run(
        start, 400, seed=0)
    trips = result.walker_round_trips
    assert len(result.round_trip_times) <= trips.sum() <= len(result.round_trip_times) + 1
    verdict = result.verdict()
    assert trips.min() >= 1 and result.swap_rates.min() >= 0.1 and verdict.equilibrated, (trips, verdict.text)
