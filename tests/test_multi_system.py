"""Campaigns over several, periodic structures (issue 16 §1): ``[[system]]`` entries (generated crystals,
liquids, clusters), each explored from its own labels at its own temperatures, with per-system metrics.

A two-system periodic argon campaign (a 32-atom fcc crystal and a 32-atom liquid box, exact LJ labels by
``ase:lj``, MTP level 2) runs end to end in this process on a Prefect test server; every new key's bad values
are refused with one line by ``pesflow run`` before anything starts.
"""

from __future__ import annotations

import time
import tomllib
import uuid

import numpy as np
import pytest

from flows.cli import main
from flows.config import ConfigError, parse_config
from flows.store import CampaignStore

RUN = uuid.uuid4().hex[:8]
TWO_SYSTEMS = """
name = "argon-{run}"
seed = 3

[[system]]
name = "crystal"
builtin = "fcc"
element = "Ar"
lattice_constant = 5.30
temperatures = [40.0]
n_start = 4
n_test = 2
rattle = 0.02
test_rattle = 0.05

[[system]]
name = "liquid"
builtin = "liquid"
element = "Ar"
density = 0.0213
temperatures = [90.0, 120.0]
n_start = 4
n_test = 2
rattle = 0.02
test_rattle = 0.05

[potential]
level = 2
cutoff = 5.0
max_iter = 20

[hmc]
temperatures = [300.0]
n_starts = 1
n_samples = 6
n_steps = 4
dt = 4.0
n_warmup = 2
save_every = 1

[selection]
threshold = 1.0
break_threshold = 50.0
budget = 4

[labeling]
labeler = "ase:lj"
n_workers = 1

[stopping]
max_iterations = 1
max_labels = 100
stop_when_no_candidates = false
"""


@pytest.fixture(scope="module")
def argon(prefect_api, tmp_path_factory):
    """One finished two-system campaign: iteration 0 explores both systems, selects and labels; iteration 1
    fits and stops at the iteration budget."""
    from flows.active_learning import active_learning

    tmp = tmp_path_factory.mktemp("argon")
    path = tmp / "argon.toml"
    path.write_text(TWO_SYSTEMS.format(run=RUN))
    t0 = time.perf_counter()
    summary = active_learning(config_path=str(path), directory=str(tmp / "run"), ui_plots=False)
    return tmp, summary, time.perf_counter() - t0


def test_two_periodic_systems_end_to_end(argon, capsys):
    from flows.campaign_systems import reference_structures
    from hmc_core.mtp import read_mtp
    from hmc_core.mtp.fit import prediction_errors, usable_labels

    tmp, summary, seconds = argon
    assert seconds < 120, f"the two-system campaign took {seconds:.0f} s"
    assert summary["finished"] and summary["reason"].startswith("iteration budget")
    cfg = parse_config(tomllib.loads((tmp / "argon.toml").read_text()), tmp / "argon.toml")
    store = CampaignStore(tmp / "run")

    # the saved configuration keeps both systems (and resumes: the same file compares equal)
    saved = parse_config(tomllib.loads(store.config_path.read_text()))
    assert saved.system_names() == ["crystal", "liquid"] and saved.systems == cfg.systems

    # labels: each system's starting set from its own structure (periodic, 32 atoms), tagged with its name
    labels = store.read_labels()
    assert list(labels["system"].values[:8]) == ["crystal"] * 4 + ["liquid"] * 4
    assert set(labels["system"].values[8:]) <= {"crystal", "liquid"} and labels.sizes["config"] > 8
    assert (labels["pbc"].values.all()) and set(labels["n_atoms"].values) == {32}
    for k, name in enumerate(("crystal", "liquid")):
        cell = reference_structures(cfg, k)["cell"].values[0]
        for j in np.flatnonzero(labels["system"].values == name):
            np.testing.assert_allclose(labels["cell"].values[j], cell)
    assert usable_labels(labels).sizes["config"] == labels.sizes["config"]
    test_set = store.read_dataset("test_set.nc")
    assert list(test_set["system"].values) == ["crystal"] * 2 + ["liquid"] * 2

    # chains: each system's starts (its own labels) at its own temperatures
    pool = store.read_dataset("samples.nc", 0)
    traces = store.read_dataset("trajectories.nc", 0)
    assert traces.sizes["chain"] == 1 + 2 and store.stage_done("explore", 0)["n_chains"] == 3
    for name, temps in (("crystal", {40.0}), ("liquid", {90.0, 120.0})):
        mine = pool["system"].values == name
        assert set(pool["temperature"].values[mine]) == temps
        assert set(labels["system"].values[pool["start"].values[mine]]) == {name}

    # metrics: overall and per-system errors (recomputed here) for each iteration
    for it in (0, 1):
        row = store.metrics_row(it)
        mtp = read_mtp(store.path("potential.mtp", it))
        for name in ("crystal", "liquid"):
            part = test_set.isel(config=np.flatnonzero(test_set["system"].values == name))
            for key, value in prediction_errors(mtp, part).items():
                assert row[f"{name}.test_{key}"] == pytest.approx(value, rel=1e-9), (name, key)
            assert np.isfinite(row[f"{name}.train_force_rmse_eV_per_A"])
        assert row["crystal.n_labels"] + row["liquid.n_labels"] == row["n_labels"]
    assert store.read_metrics()["liquid.test_force_rmse_eV_per_A"].attrs["units"] == "eV/Å"

    # status shows the per-system table
    capsys.readouterr()
    assert main(["status", str(tmp / "run")]) == 0
    out = capsys.readouterr().out
    assert "per system" in out and "crystal" in out and "liquid" in out


def test_learning_curve_has_each_system(argon):
    from flows.plots import learning_curve_figure

    tmp, _, _ = argon
    fig = learning_curve_figure(CampaignStore(tmp / "run"))
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert "test: crystal" in labels and "test: liquid" in labels


# ---- configuration ----------------------------------------------------------------------------------------
def test_single_system_table_is_unchanged():
    """A one-system ``[system]`` table is a one-element list named after its builtin, and is saved as the same
    ``[system]`` table as before (so campaign directories made before ``[[system]]`` resume)."""
    from flows.store import _comparable

    old = 'name = "w"\nseed = 0\n\n[system]\nbuiltin = "H2O"\nindex = ":"\nn_start = 8\nn_test = 8\n' \
          'rattle = 0.08\nmin_distance = 0.6\n'
    cfg = parse_config(tomllib.loads(old))
    assert len(cfg.systems) == 1 and cfg.system.builtin == "H2O" and cfg.system_names() == ["H2O"]
    assert "[system]\n" in cfg.to_toml() and "[[system]]" not in cfg.to_toml() and "name = \"H2O\"" not in \
        cfg.to_toml()
    assert _comparable(old + cfg.to_toml().split("[system]")[1].split("\n\n", 1)[1]) == _comparable(cfg.to_toml())
    one = parse_config({"system": [{"builtin": "H2O"}]})
    assert one == parse_config({"system": {"builtin": "H2O"}})
    assert cfg.explore_temperatures(0) == cfg.hmc.temperatures


def test_generated_structures():
    from flows.campaign_systems import reference_structures
    from hmc_core.configurations import config_arrays
    from hmc_core.neighbors import closest_pair

    cfg = parse_config({"system": [
        {"builtin": "fcc", "element": "Cu"}, {"builtin": "hcp", "element": "Mg", "repeat": [2, 1, 1]},
        {"builtin": "bcc", "element": "Fe", "density": 0.085}, {"builtin": "cluster", "element": "Ar", "n_atoms": 13},
        {"builtin": "cluster", "element": "Xe", "n_atoms": 20}, {"name": "l", "builtin": "liquid", "element": "Kr"}]})
    assert cfg.system_names() == ["fcc-Cu", "hcp-Mg", "bcc-Fe", "cluster-Ar", "cluster-Xe", "l"]
    sizes = []
    for k in range(len(cfg.systems)):
        x, z, cell, pbc = config_arrays(reference_structures(cfg, k), 0)
        sizes.append(len(z))
        assert closest_pair(x, cell, pbc, 0.8 * cfg.systems[k].number_density() ** (-1 / 3)) is None
        assert bool(pbc.all()) == (cfg.systems[k].builtin != "cluster")
    assert sizes == [32, 8, 16, 13, 20, 32]
    x, _, cell, _ = config_arrays(reference_structures(cfg, 0), 0)
    assert np.allclose(np.diag(cell), 2 * 3.61)  # ASE's Cu reference lattice constant, 2 × 2 × 2 cells
    assert abs(16 / np.linalg.det(config_arrays(reference_structures(cfg, 2), 0)[2]) - 0.085) < 1e-9


def test_streams_of_the_first_system_are_unchanged():
    """System 0 draws from the streams a one-system campaign always used; the others from their own."""
    from flows.campaign_systems import plan_explore, rattled_sets, stream_key
    from flows.systems import load_system, rattled_set
    from tasks.explore import plan_chains

    cfg = parse_config({"system": [{"builtin": "H2O", "n_start": 3, "n_test": 0},
                                   {"builtin": "NH3", "n_start": 3, "n_test": 0, "temperatures": [100.0]}]})
    start = rattled_sets(cfg, "start_set")
    first = rattled_set(load_system("H2O"), 3, 0.08, 0.6, cfg.stream("start_set"))
    np.testing.assert_array_equal(start["positions"].values[:3, :3], first["positions"].values)
    assert stream_key(0) == () and stream_key(1) == (1,)
    assert rattled_sets(cfg, "test_set") is None
    plan = plan_explore(cfg, start, 2)
    old = plan_chains(cfg.hmc, 3, cfg.stream("chain_starts", 2))
    assert [(c.start, c.temperature, c.key) for c in plan[:len(old)]] == [(c.start, c.temperature, (0, *c.key))
                                                                        for c in old]
    assert {c.temperature for c in plan if c.system == 1} == {100.0} and all(c.start >= 3 for c in plan[len(old):])


ARGON = 'builtin = "fcc"\nelement = "Ar"\nn_start = 4\nn_test = 2'
BAD_SYSTEM_KEYS = [  # ([[system]] body of the second system, words of the one-line error)
    ('name = "crystal"', "names must be unique"),
    ('name = "two words"', "name"),
    ('name = ""', "name"),
    ('builtin = "fcc"', "needs `element`"),
    ('builtin = "fcc"\nelement = "Qq"', "not a chemical symbol"),
    ('builtin = "fcc"\nelement = "ar"', "did you mean 'Ar'"),
    ('builtin = "fcc"\nelement = "H"', "no reference crystal"),
    ('builtin = "liquid"\nelement = "Ar"\nlattice = "sc"', "lattice"),
    ('builtin = "fcc"\nelement = "Ar"\nlattice = "bcc"', "`lattice` is only used with builtin = liquid"),
    ('builtin = "fcc"\nelement = "Ar"\nlattice_constant = -5.0', "lattice_constant"),
    ('builtin = "fcc"\nelement = "Ar"\nlattice_constant = nan', "lattice_constant"),
    ('builtin = "fcc"\nelement = "Ar"\ndensity = 0', "density"),
    ('builtin = "fcc"\nelement = "Ar"\ndensity = 0.02\nlattice_constant = 5.3', "not both"),
    ('builtin = "fcc"\nelement = "Ar"\nrepeat = [2, 2]', "three unit-cell counts"),
    ('builtin = "fcc"\nelement = "Ar"\nrepeat = [0, 1, 1]', "repeat"),
    ('builtin = "fcc"\nelement = "Ar"\nrepeat = [20, 20, 20]', "more than 2000"),
    ('builtin = "cluster"\nelement = "Ar"\nrepeat = [1, 1, 1]', "`repeat` is only used"),
    ('builtin = "cluster"\nelement = "Ar"', "needs `n_atoms`"),
    ('builtin = "cluster"\nelement = "Ar"\nn_atoms = 1', "n_atoms"),
    ('builtin = "fcc"\nelement = "Ar"\nn_atoms = 13', "`n_atoms` is only used with builtin = cluster"),
    ('builtin = "H2O"\nelement = "O"', "`element` is only used"),
    ('builtin = "fcc"\nelement = "Ar"\ntemperatures = []', "temperatures"),
    ('builtin = "fcc"\nelement = "Ar"\ntemperatures = [-5.0]', "temperatures"),
    ('builtin = "fcc"\nelement = "Ar"\ntemperatures = [inf]', "temperatures"),
    ('builtin = "fcc"\nelement = "Ar"\npressure = -1.0', "pressure"),
    ('builtin = "fcc"\nelement = "Ar"\npressure = nan', "pressure"),
    ('builtin = "fcc"\nelement = "Ar"\npressure = 2e7', "pressure"),
    ('builtin = "fcc"\nelement = "Ar"\npressure = "high"', "pressure"),
    ('builtin = "NH3"\npressure = 10.0', "needs a periodic cell"),
    ('builtin = "cluster"\nelement = "Ar"\nn_atoms = 13\npressure = 10.0', "needs a periodic cell"),
    ('builtin = "fcc"\nelement = "Ar"\nbogus = 1', "unknown key [[system]] #2"),
    ('builtin = "fcc"\nelement = "Ar"\nlattice_constant = 2.5\nmin_distance = 2.0',
     "closer than [[system]] 'fcc-Ar' min_distance"),
    ('builtin = "fcc"\nelement = "Ar"\nrattle = 0.9\nmin_distance = 3.5', "lower [system] rattle"),
]


def _two(tmp_path, body: str, extra: str = "") -> str:
    path = tmp_path / "two.toml"
    path.write_text(f'[[system]]\nname = "crystal"\n{ARGON}\n\n[[system]]\n{body}\nn_start = 4\nn_test = 2\n'
                    f'\n[labeling]\nlabeler = "ase:lj"\n{extra}')
    return str(path)


@pytest.mark.parametrize(("body", "words"), BAD_SYSTEM_KEYS, ids=[b.splitlines()[-1] for b, _ in BAD_SYSTEM_KEYS])
def test_bad_system_key_is_one_line_before_anything_starts(tmp_path, capsys, body, words):
    t0 = time.perf_counter()
    code = main(["run", _two(tmp_path, body), "--dir", str(tmp_path / "c")])
    captured = capsys.readouterr()
    assert code == 2, captured.err[-500:]
    assert captured.err.startswith("error:") and captured.err.strip().count("\n") == 0, captured.err
    assert "Traceback" not in captured.err + captured.out
    assert words in captured.err, captured.err
    assert time.perf_counter() - t0 < 30
    assert not (tmp_path / "c" / "campaign.toml").exists()


def test_bad_system_lists():
    for data, words in (({"system": []}, "give 1 to 64 systems"), ({"system": 3}, "system"),
                        ({"system": [{"builtin": "H2O", "n_start": 60}, {"builtin": "NH3", "n_start": 60}],
                          "stopping": {"max_labels": 100}}, "over all systems"),
                        ({"system": [{"builtin": "H2O"}, {"builtin": "H2O"}]}, "'H2O' used more than once")):
        with pytest.raises(ConfigError, match=".*") as info:
            parse_config(data)
        assert words in str(info.value) and "\n" not in str(info.value)


def test_readme_system_block(tmp_path):
    """The README's ``[[system]]`` example is a valid campaign file whose systems all build (a slab file made
    here stands in for ``ar_slab.extxyz``)."""
    import re
    from pathlib import Path

    from ase.build import fcc111

    from flows.config import load_config
    from flows.preflight import check_structure

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"^```toml\n(.*?)^```", readme, re.S | re.M) if "[[system]]" in b)
    (tmp_path / "campaign.toml").write_text(block)
    fcc111("Ar", (2, 2, 3), a=5.26, vacuum=6.0, periodic=True).write(tmp_path / "ar_slab.extxyz")
    cfg = load_config(tmp_path / "campaign.toml")
    assert cfg.system_names() == ["crystal", "liquid", "surface"]
    sizes = [check_structure(cfg, k).sizes["atom"] for k in range(3)]
    assert sizes == [32, 32, 12]
    assert cfg.explore_temperatures(2) == cfg.hmc.temperatures
