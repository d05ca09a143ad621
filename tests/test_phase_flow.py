"""The phase flows: their stage functions and report without Prefect (default), end to end through Prefect
(slow: the Prefect test server alone takes 20–80 s to start here), and CLI bad input (fails before Prefect starts)."""

import json

import numpy as np
import pytest
import xarray as xr

from flows.cli import main


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def test_melting_curve_pieces(tmp_path):
    from flows.phase import combine_ladders, plot_melting_curve
    from hmc_core.ladders import melting_bracket
    from hmc_core.phase_system import PhaseSystem
    from tasks.phase import ladder

    system = PhaseSystem("LJ", 2.5)
    kw = dict(temperatures=[0.6, 1.8], pressure=1.0, n_cells=3, n_samples=15, n_warmup=5, analyse_every=5)
    heat = ladder(system, "heating", vacancy_fraction=0.03, **kw)
    cool = ladder(system, "cooling", melt_temperature=2.0, n_melt=20, **kw)
    assert heat.attrs["n_atoms"] == 108 - 3 and cool.attrs["n_atoms"] == 108
    assert list(cool["temperature"].values) == [0.6, 1.8]  # sorted, whatever the ladder's direction
    curves = combine_ladders([heat, cool])
    assert list(curves["ladder"].values) == ["heating-defects-r0", "cooling-perfect-r0"]
    bracket = melting_bracket([heat], [cool])
    assert bracket["T_plus"] == 1.8
    path = plot_melting_curve(curves, {**bracket, "reference_T_m": 0.77}, tmp_path / "curve.png")
    assert path.stat().st_size > 10_000


def test_coexistence_pieces(tmp_path):
    from flows.phase import combine_coexistence, plot_coexistence
    from hmc_core.coexistence import coexistence_bracket
    from hmc_core.phase_system import PhaseSystem
    from tasks.phase import coexistence_run

    system = PhaseSystem("LJ", 2.5)
    runs = [coexistence_run(system, t, 1.0, (4, 4, 8), n_samples=10, analyse_every=5, n_melt=40, n_hold=0,
                            n_bulk=10, n_steps=10, seed=k) for k, t in enumerate([0.9, 0.6])]
    combined = combine_coexistence(runs)
    assert list(combined["temperature"].values) == [0.6, 0.9] and combined.sizes["frame"] == 3
    assert combined.sizes["sample"] == 10 and np.all(np.isfinite(combined["potential_energy"].values))
    assert combined["solid_profile"].shape == (2, 3, 16)
    summary = {"bracket": list(coexistence_bracket(runs)["bracket"]), "reference_T_m": 0.77}
    assert plot_coexistence(combined, summary, tmp_path / "c.png").stat().st_size > 10_000


@pytest.mark.slow
def test_melting_curve_flow(harness, tmp_path):
    from flows.phase import melting_curve
    from tasks.phase_settings import MeltingCurveSettings

    settings = MeltingCurveSettings(temperatures=(0.6, 1.8), n_cells=3, n_samples=20, n_warmup=10, analyse_every=10,
                                    cutoff_sigma=2.5, vacancy_fraction=0.03)
    summary = melting_curve(settings, run_dir=str(tmp_path))
    curves = xr.open_dataset(tmp_path / "melting_curve.nc", engine="h5netcdf")
    assert sorted(curves["ladder"].values) == ["cooling-perfect-r0", "heating-defects-r0", "heating-perfect-r0"]
    assert curves.sizes["temperature"] == 2 and np.all(np.isfinite(curves["density"].values))
    assert (tmp_path / "melting_curve.png").stat().st_size > 10_000
    assert len(list((tmp_path / "ladders").glob("*.nc"))) == 3
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["reference_T_m"] == pytest.approx(0.770, abs=0.002)  # LJ melting line at P* = 1
    assert summary["T_plus"] == 1.8  # 108 atoms at T* = 1.8 melt in 20 sweeps


@pytest.mark.parametrize("args,message", [
    (["melt", "--pressure", "-1"], "negative"),
    (["melt", "--element", "Og"], "unknown element"),
    (["melt", "--n-temperatures", "1"], "two positive temperatures"),
    (["coexist", "--cells", "3", "3", "6"], "twice the cutoff"),
    (["coexist", "--t-min", "-0.1"], "positive"),
    (["coexist", "--cells", "6", "6", "11"], "even"),
    (["seed", "--size", "2000"], "box"),
    (["seed", "-s", "diamond"], "unknown seed structure"),
    (["seed", "--element", "Ar", "--pressure-unit", "psi"], "pressure-unit"),
])
def test_cli_bad_input(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "error:" in err and message in err.replace("\n", " ")


@pytest.mark.slow
def test_seeded_crystallisation_flow(harness, tmp_path):
    from flows.phase import seeded_crystallisation
    from tasks.phase_settings import SeededSettings

    settings = SeededSettings(temperatures=(0.6,), structures=("fcc", "ico"), seed_sizes=(13,), n_cells=4,
                              n_samples=10, analyse_every=5, cutoff_sigma=2.5)
    summary = seeded_crystallisation(settings, run_dir=str(tmp_path))
    combined = xr.open_dataset(tmp_path / "seeded.nc", engine="h5netcdf")
    assert combined.sizes["run"] == 2 and combined.sizes["frame"] == 3
    assert [r["structure"] for r in summary["runs"]] == ["fcc", "ico"]
    assert (tmp_path / "seeded.png").exists() and len(summary["brackets"]) == 2


@pytest.mark.slow
def test_coexistence_flow(harness, tmp_path):
    from flows.phase import coexistence
    from tasks.phase_settings import CoexistenceSettings

    settings = CoexistenceSettings(temperatures=(0.95, 0.5), n_cells=(4, 4, 8), n_samples=20, analyse_every=10,
                                   n_melt=40, n_hold=10, n_bulk=20, n_steps=10, cutoff_sigma=2.5)
    summary = coexistence(settings, run_dir=str(tmp_path))
    combined = xr.open_dataset(tmp_path / "coexistence.nc", engine="h5netcdf")
    assert list(combined["temperature"].values) == [0.5, 0.95] and combined.sizes["sample"] == 20
    assert sorted(p.name for p in (tmp_path / "runs").glob("*.nc")) == ["T0.5.nc", "T0.95.nc"]
    assert (tmp_path / "coexistence.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["reference_T_m"] == pytest.approx(0.770, abs=0.002) and len(saved["runs"]) == 2
    assert [round(v["T_m"], 3) for v in saved["published_T_m"]] == [0.770, 0.761]  # van der Hoef; Agrawal & Kofke
    assert saved["published_spread"] == pytest.approx([0.7614, 0.7700], abs=1e-4)
    assert summary["runs"][0]["temperature"] == 0.95  # in the order given


def test_phase_commands_refuse_a_non_empty_out(tmp_path, capsys):
    """Old results would be mixed with new ones: a non-empty --out is refused before anything runs (no
    server), and --overwrite is the way to replace it; settings errors name the command-line option."""
    (tmp_path / "old.nc").write_text("earlier run")
    for cmd in ("melt", "coexist", "seed"):
        assert main([cmd, "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert "is not empty" in err and "--overwrite" in err
    assert (tmp_path / "old.nc").exists()
    assert main(["melt", "--chains", "0", "--out", str(tmp_path / "new")]) == 2
    assert "--chains = 0" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_settings_are_built_once_and_given_to_the_flow():
    """The flows take the validated settings model itself (no positional re-construction)."""
    import inspect

    from flows.phase import coexistence, melting_curve, seeded_crystallisation
    from tasks.phase_settings import CoexistenceSettings, MeltingCurveSettings, SeededSettings

    for flow_, model in ((melting_curve, MeltingCurveSettings), (coexistence, CoexistenceSettings),
                         (seeded_crystallisation, SeededSettings)):
        params = inspect.signature(flow_.fn).parameters
        assert list(params) == ["settings", "run_dir"] and params["settings"].annotation in (model, model.__name__)
    a, b = SeededSettings(seed=3), SeededSettings(seed=3)
    assert a.stream(2, 0, 1, 0, 0).generate_state(2).tolist() == b.stream(2, 0, 1, 0, 0).generate_state(2).tolist()
    assert a.stream(2, 0, 1, 0, 0).generate_state(2).tolist() != a.stream(2, 0, 0, 1, 0).generate_state(2).tolist()


def test_published_melting_temperatures_with_sources_and_spread():
    from flows.phase import published_melting
    from hmc_core.phase_system import PhaseSystem

    lj = published_melting(PhaseSystem("LJ", 3.0), 1.0)
    assert [round(v["T_m"], 4) for v in lj["published_T_m"]] == [0.77, 0.7614]
    assert all("J. Chem. Phys." in v["source"] or "Mol. Phys." in v["source"] for v in lj["published_T_m"])
    ar = published_melting(PhaseSystem("Ar", 3.0), 1.0)  # 1 bar: the triple-point region, in K
    assert ar["published_spread"] == pytest.approx([0.687 * 119.8, 0.694 * 119.8], rel=1e-3)


def test_finished_runs_are_kept_when_another_fails(harness, tmp_path):
    """keep_as_finished writes each result as it arrives; a failing run does not cost the others theirs."""
    from prefect import task
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.phase import keep_as_finished

    @task
    def run(k: int) -> xr.Dataset:
        if k == 1:
            raise ValueError("this run crashed")
        return xr.Dataset({"x": ("i", np.arange(3.0) * k)}, attrs={"k": k})

    with ThreadPoolTaskRunner(max_workers=2) as runner:
        futures = [runner.submit(run, {"k": k}) for k in range(3)]
        with pytest.raises(RuntimeError, match="1 of 3 runs failed.*this run crashed.*2 finished runs are saved"):
            keep_as_finished(futures, lambda ds: tmp_path / f"run{ds.attrs['k']}.nc")
    assert sorted(p.name for p in tmp_path.glob("*.nc")) == ["run0.nc", "run2.nc"]
