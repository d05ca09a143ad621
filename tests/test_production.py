"""A campaign's ``[production]`` section (issue 16 §4): after the campaign stops, a phase study on its final.mtp as a
Prefect sub-flow, outputs in ``<campaign>/production/``.

Every bad key is refused with one line when the file is loaded, and by ``pesflow run`` (exit status 2, no
traceback) before anything starts; a tiny periodic argon campaign (exact LJ labels by ``ase:lj``, MTP level 2, one
fit) runs a tiny melting-curve study end to end in this process on a Prefect test server, and a rerun skips it.
"""

from __future__ import annotations

import json
import re
import time
import tomllib
import uuid
from pathlib import Path

import pytest
import xarray as xr

from flows.cli import main
from flows.config import ConfigError, parse_config
from flows.store import CampaignStore

RUN = uuid.uuid4().hex[:8]
CAMPAIGN = """
name = "{name}"
seed = 5

[system]
builtin = "fcc"
element = "Ar"
lattice_constant = 5.30
temperatures = [40.0]
n_start = 4
n_test = 2
rattle = 0.02
test_rattle = 0.05

[potential]
level = 2
cutoff = 5.0
max_iter = 20

[labeling]
labeler = "ase:lj"
n_workers = 1

[stopping]
max_iterations = 0
max_labels = 100
"""
#: a tiny melting curve: one heating ladder of a perfect 108-atom Ar crystal and one cooling ladder, two temperatures
PRODUCTION = """
[production]
flow = "melt"
species = "Ar"

[production.settings]
temperatures = [40.0, 80.0]
pressure = 1.0
lattice_constant = 5.30
n_cells = 3
vacancy_fraction = 0.0
n_samples = 2
n_warmup = 0
analyse_every = 1
n_workers = 2
"""


# (the [production] table, words the one-line error must contain)
BAD = [
    ({"settings": {"temperatures": [60.0]}}, "missing key [production] flow"),
    ({"flow": "anneal"}, "[production] flow = 'anneal'"),
    ({"flow": "temper"}, "not available in [production]"),
    ({"flow": "sample"}, "pesflow sample --potential"),
    ({"flow": "coexist", "potential": "x.mtp", "settings": {"temperatures": [60.0]}}, "final.mtp"),
    ({"flow": "coexist", "bogus": 1, "settings": {"temperatures": [60.0]}},
     "unknown key [production] bogus = 1; allowed keys: flow, species, pressure_unit, settings"),
    ({"flow": "coexist", "species": "Qq", "settings": {"temperatures": [60.0]}}, "[production] species = 'Qq'"),
    ({"flow": "coexist", "species": 0, "settings": {"temperatures": [60.0]}}, "[production] species = 0"),
    ({"flow": "coexist", "pressure_unit": "psi", "settings": {"temperatures": [60.0]}},
     "[production] pressure_unit = 'psi'"),
    ({"flow": "coexist", "settings": "hot"}, "[production] settings = 'hot'"),
    ({"flow": "coexist"}, "settings.temperatures is required"),
    ({"flow": "seed", "settings": {"temperatures": [60.0]}}, "settings.melt_temperature is required"),
    ({"flow": "coexist", "settings": {"temperatures": [60.0], "potential": "x.mtp"}}, "settings.potential"),
    ({"flow": "coexist", "settings": {"temperatures": [60.0], "species": [18]}}, "[production] species"),
    ({"flow": "coexist", "settings": {"temperatures": [60.0], "element": "Ar"}}, "settings.element"),
    ({"flow": "coexist", "settings": {"temperatures": [60.0], "cutoff_sigma": 2.5}}, "settings.cutoff_sigma"),
    ({"flow": "coexist", "settings": {"temperatures": [60.0], "bogus": 1}},
     ("unknown key settings.bogus", "allowed keys: pressure")),
    ({"flow": "coexist", "settings": {"temperatures": [-60.0]}}, "settings.temperatures[0] = -60.0"),
    ({"flow": "coexist", "settings": {"temperatures": []}}, "settings.temperatures = []"),
    ({"flow": "coexist", "settings": {"temperatures": [60.0], "pressure": -1.0}}, "settings.pressure = -1.0"),
    ({"flow": "coexist", "pressure_unit": "GPa", "settings": {"temperatures": [60.0], "pressure": "high"}},
     "settings.pressure = 'high'"),
    ({"flow": "coexist", "settings": {"temperatures": [60.0], "n_samples": 0}}, "settings.n_samples = 0"),
    ({"flow": "coexist", "settings": {"temperatures": [60.0], "n_cells": [3, 3, 5]}}, "even last one"),
    ({"flow": "coexist", "settings": {"temperatures": [60.0], "lattice_constant": -5.0}},
     "settings.lattice_constant = -5.0"),
    ({"flow": "coexist", "settings": {"temperatures": [60.0], "threshold": 0.9}}, "settings.threshold = 0.9"),
    ({"flow": "melt", "settings": {"temperatures": [60.0]}}, "at least two positive temperatures"),
    ({"flow": "melt", "settings": {"temperatures": [60.0, 90.0], "n_cells": 2}}, "settings.n_cells = 2"),
    ({"flow": "seed", "settings": {"temperatures": [60.0], "melt_temperature": 200.0, "structures": ["diamond"]}},
     "unknown seed structure(s) ['diamond']"),
    ({"flow": "seed", "settings": {"temperatures": [60.0], "melt_temperature": 200.0, "seed_sizes": [5000]}},
     "a seed of 5000 atoms"),
]


@pytest.mark.parametrize(("table", "words"), BAD, ids=[f"{i}" for i in range(len(BAD))])
def test_bad_production_keys_are_one_line_errors(table, words):
    with pytest.raises(ConfigError) as err:
        parse_config({"production": table}, "campaign.toml")
    message = str(err.value)
    assert message.startswith("campaign.toml: ") and "\n" not in message
    for w in (words,) if isinstance(words, str) else words:
        assert w in message, f"{w!r} not in {message!r}"


def test_good_sections_load_and_save():
    """Each flow loads; the saved campaign.toml keeps the section (settings as an inline table) and loads equal;
    a campaign without the section saves exactly as before (no [production])."""
    for table in ({"flow": "coexist", "settings": {"temperatures": [60.0, 90.0], "n_cells": [2, 2, 4]}},
                  {"flow": "melt", "species": 18, "pressure_unit": "GPa",
                   "settings": {"temperatures": [60.0, 90.0], "pressure": 0.1}},
                  {"flow": "seed", "settings": {"temperatures": [60.0], "melt_temperature": 200.0,
                                                "structures": ["fcc", "ico"], "seed_sizes": [13]}}):
        cfg = parse_config({"production": table})
        saved = cfg.to_toml()
        assert "[production]" in saved and parse_config(tomllib.loads(saved)) == cfg
    plain = parse_config({})
    assert plain.production is None and "production" not in plain.to_toml()


def test_settings_are_built_on_the_final_potential(shared_data):
    """On the potential the pressure is converted (GPa → bar), the element comes from the file, and what depends on
    the potential (the box against its cutoff) is checked there with one line."""
    from flows.production import check_elements

    level10 = shared_data / "mtp" / "cubic_level10.mtp"
    cfg = parse_config({"production": {"flow": "coexist", "pressure_unit": "GPa", "settings": {
        "temperatures": [1100.0], "pressure": 0.5, "n_cells": [3, 3, 6], "lattice_constant": 3.6}}})
    s = cfg.production.flow_settings(level10, (29,))
    assert (s.element, s.pressure, s.potential, s.lattice_constant) == ("Cu", 5000.0, str(level10), 3.6)
    small = parse_config({"production": {"flow": "coexist", "settings": {
        "temperatures": [1100.0], "n_cells": [2, 2, 4], "lattice_constant": 3.6}}})
    with pytest.raises(ValueError, match=r"^\[production\] settings on .*twice the MTP's cutoff"):
        small.production.flow_settings(level10, (29,))
    assert check_elements(cfg.production, [29, 29]) == (29,)
    with pytest.raises(ValueError, match="one-component study, but the campaign's potential has 2 elements"):
        check_elements(cfg.production, [1, 8])
    with pytest.raises(ValueError, match="species = 'Ar' is not the campaign's element Cu"):
        check_elements(parse_config({"production": {"flow": "coexist", "species": "Ar", "settings": {
            "temperatures": [1100.0]}}}).production, [29])


# ---- through `pesflow run`: exit status 2, one line, nothing started -------------------------------------------
def _run_error(capsys, path: Path, directory: Path, words: str) -> None:
    t0 = time.perf_counter()
    code = main(["run", str(path), "--dir", str(directory)])
    seconds = time.perf_counter() - t0
    captured = capsys.readouterr()
    err = captured.err
    assert code == 2, f"exit {code}: {err[-500:]} {captured.out[-500:]}"
    assert "Traceback" not in err + captured.out
    assert err.startswith("error:") and err.strip().count("\n") <= 2, err
    assert words in " ".join(err.split()), f"{words!r} not in {err!r}"
    assert seconds < 30, f"took {seconds:.1f} s: something expensive started before the error"
    assert not (directory / "campaign.toml").exists()


@pytest.mark.parametrize(("body", "words"), [
    ('flow = "coexist"\npotential = "final.mtp"\nsettings = {temperatures = [60.0]}', "always uses the campaign's"),
    ('flow = "temper"', "not available in [production]"),
    ('flow = "coexist"\nsettings = {temperatures = [60.0], n_sampels = 3}', "unknown key settings.n_sampels"),
    ('flow = "coexist"\nsettings = {n_cells = [3, 3, 6]}', "settings.temperatures is required"),
    ('flow = "coexist"\nspecies = "Ne"\nsettings = {temperatures = [60.0]}',
     "[production] species = 'Ne' is not the campaign's element Ar"),
])
def test_pesflow_run_refuses_bad_production(capsys, tmp_path, body, words):
    path = tmp_path / "c.toml"
    path.write_text(CAMPAIGN.format(name="bad") + "\n[production]\n" + body + "\n")
    _run_error(capsys, path, tmp_path / "run", words)


def test_pesflow_run_refuses_production_of_a_two_element_campaign(capsys, tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[system]\nbuiltin = "H2O"\nn_start = 4\nn_test = 2\n\n[labeling]\nmethod = "hf"\n'
                    'basis = "sto-3g"\ndensity_fit = false\n\n[production]\nflow = "melt"\n'
                    "settings = {temperatures = [300.0, 400.0]}\n")
    _run_error(capsys, path, tmp_path / "run", "one-component study, but the campaign's potential has 2 elements "
                                               "(H, O)")


def test_readme_production_block():
    """The README's ``[production]`` example is a valid campaign section."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"^```toml\n(.*?)^```", readme, re.S | re.M) if "[production]" in b)
    cfg = parse_config(tomllib.loads(block))
    assert cfg.production.flow == "coexist" and cfg.production.settings["temperatures"]


# ---- end to end ----------------------------------------------------------------------------------------------
def _flow_runs(**filters):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(**filters))


def test_production_runs_after_the_campaign_as_a_sub_flow(prefect_api, tmp_path, capsys):
    from prefect.client.schemas.filters import FlowRunFilterName, FlowRunFilterParentFlowRunId

    from flows.active_learning import active_learning

    name = f"production-{RUN}"
    path = tmp_path / "c.toml"
    path.write_text(CAMPAIGN.format(name=name) + PRODUCTION)
    directory = tmp_path / "run"
    t0 = time.perf_counter()
    summary = active_learning(config_path=str(path), directory=str(directory), ui_plots=False)
    seconds = time.perf_counter() - t0
    assert seconds < 60, f"the campaign with its production study took {seconds:.0f} s"
    assert summary["finished"] and summary["reason"].startswith("iteration budget")
    assert summary["this_run_s"]["production"] > 0

    store = CampaignStore(directory)
    out = directory / "production"
    for f in ("summary.json", "melting_curve.nc", "melting_curve.png", "production.json",
              "ladders/heating-perfect-r0.nc", "ladders/cooling-perfect-r0.nc"):
        assert (out / f).stat().st_size > 0, f
    result = json.loads((out / "summary.json").read_text())
    assert result["settings"]["element"] == "Ar" and result["settings"]["potential"] == str(store.path("final.mtp"))
    assert result["settings"]["lattice_constant"] == 5.30 and result["n_atoms_perfect"] == 108
    assert result["settings"]["temperatures"] == [40.0, 80.0] and result["reference_T_m"] is None
    curves = xr.open_dataset(out / "melting_curve.nc", engine="h5netcdf")
    assert list(curves["temperature"].values) == [40.0, 80.0] and curves.attrs["pressure_unit"] == "bar"
    assert sorted(curves["direction"].values) == ["cooling", "heating"]
    marker = json.loads((out / "production.json").read_text())
    assert marker["wall_s"] > 0 and marker["flow"] == "melt"
    from flows.production import file_sha256

    assert marker["key"]["final_mtp_sha256"] == file_sha256(store.path("final.mtp"))
    assert "[production]" in store.config_path.read_text()

    # the study is a child flow run of the campaign's flow run
    (parent,) = _flow_runs(name=FlowRunFilterName(any_=[f"campaign-{name}"]))
    children = _flow_runs(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id]))
    assert [c.name for c in children] == ["melt-Ar-P1-3cells-rng0"]
    assert children[0].parent_task_run_id is not None and children[0].state.is_completed()

    # pesflow status mentions it
    capsys.readouterr()
    assert main(["status", str(directory)]) == 0
    captured = capsys.readouterr()
    status = " ".join((captured.out + captured.err).split())
    assert f"production: melt in {marker['wall_s']:.1f} s" in status and "melting_curve.nc" in status

    # a rerun of the finished campaign skips the study (same final.mtp, same section)
    stamp = (out / "summary.json").stat().st_mtime_ns
    again = active_learning(config_path=str(path), directory=str(directory), ui_plots=False)
    assert "production" not in again["this_run_s"] and (out / "summary.json").stat().st_mtime_ns == stamp
    parents = _flow_runs(name=FlowRunFilterName(any_=[f"campaign-{name}"]))
    assert len(parents) == 2
    assert len(_flow_runs(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[p.id for p in parents]))) == 1

    # `pesflow run` answers the finished campaign without any flow run (Prefect is not started) ...
    from flows.active_learning import nothing_to_do
    from flows.config import load_config
    from flows.production import production_pending

    cfg = load_config(path)
    assert not production_pending(cfg, store) and nothing_to_do(cfg, store).startswith("iteration budget")
    capsys.readouterr()
    t0 = time.perf_counter()
    assert main(["run", str(path), "--dir", str(directory), "--no-plots"]) == 0
    seconds = time.perf_counter() - t0
    captured = capsys.readouterr()
    text = " ".join((captured.out + captured.err).split())
    assert "already finished (iteration budget" in text and "nothing to do" in text and "Prefect:" not in text
    assert len(_flow_runs(name=FlowRunFilterName(any_=[f"campaign-{name}"]))) == 2 and seconds < 20
    # ... but not when a changed [production] section or a larger budget leaves work to do
    changed = parse_config(tomllib.loads(CAMPAIGN.format(name=name) + PRODUCTION.replace("40.0, 80.0", "40.0, 90.0")))
    assert production_pending(changed, store) and nothing_to_do(changed, store) is None
    larger = cfg.with_overrides(stopping={"max_iterations": cfg.stopping.max_iterations + 1})
    assert nothing_to_do(larger, store) is None
    store.path("final.mtp").unlink()
    assert production_pending(cfg, store)
