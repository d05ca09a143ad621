"""ASE labelers (issue 16 §2): ``labeler = "ase:lj" | "ase:emt" | "ase:xtb" | "ase"`` + ``calculator``.

Each labeler equals its calculator called directly (energy, forces, stress; periodic and not); the label cache
answers a repeat bit for bit and misses on a changed parameter; a calculator that raises gives failed labels
and the batch goes on; every bad key or value is refused with one line before anything runs, in Python, in
``pesflow label`` and in a campaign file (``pesflow run``). Every test takes well under a few seconds.
"""

from __future__ import annotations

import json
import os
import re
import time

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones
from ase.calculators.morse import MorsePotential
from ase.cluster import Icosahedron
from conftest import require_module
from pydantic import ValidationError
from test_bad_inputs import _case_error, _config

from hmc_core.configurations import from_atoms, read_netcdf
from tasks.label import (
    LabelInputError,
    LabelInputs,
    LabelSettings,
    check_batch,
    label_atoms,
    label_configurations,
    run_label,
)

TIGHT = dict(rtol=1e-12, atol=1e-12)


def _argon_solid(seed: int = 1) -> Atoms:
    atoms = bulk("Ar", "fcc", 5.26, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=seed)
    return atoms


def _argon_cluster(seed: int = 2) -> Atoms:
    atoms = Icosahedron("Ar", 2)
    atoms.rattle(0.05, seed=seed)
    return atoms


def _assert_equals_direct(labels, atoms_list, calculator_factory, stress: bool = True) -> None:
    """Row k of ``labels`` equals ``calculator_factory()`` evaluated on ``atoms_list[k]``."""
    for k, atoms in enumerate(atoms_list):
        atoms = atoms.copy()
        atoms.calc = calculator_factory()
        n = len(atoms)
        assert labels["status"].values[k] == "ok", labels["reason"].values[k]
        np.testing.assert_allclose(labels["energy"].values[k], atoms.get_potential_energy(), **TIGHT)
        np.testing.assert_allclose(labels["forces"].values[k, :n], atoms.get_forces(), **TIGHT)
        if stress and atoms.pbc.all():
            np.testing.assert_allclose(labels["stress"].values[k], atoms.get_stress(voigt=True), **TIGHT)
        elif "stress" in labels:
            assert np.all(np.isnan(labels["stress"].values[k]))


# ---- each labeler equals its calculator ---------------------------------------------------------------------

def test_lj_defaults_are_argon_of_pesflow_coexist():
    from hmc_core.phase_system import PhaseSystem
    from hmc_core.units import METAL

    argon = PhaseSystem("Ar")
    key = LabelSettings(labeler="ase:lj").method_key()
    assert key["calculator"] == "ase.calculators.lj:LennardJones"
    p = key["parameters"]
    assert p["epsilon"] == pytest.approx(argon.epsilon_over_kB * METAL.kB, rel=1e-15)
    assert p["sigma"] == argon.sigma and p["rc"] == pytest.approx(argon.cutoff_sigma * argon.sigma, rel=1e-15)
    assert p["smooth"] is False and "ro" not in p
    assert LabelSettings(labeler="ase:lj", parameters={"sigma": 2.0}).method_key()["parameters"]["rc"] == 6.0


def test_coexist_without_tail_correction_samples_the_ase_lj_model():
    """``pesflow coexist --element Ar --no-tail-correction`` samples exactly what ``ase:lj`` labels (the model a
    potential learned from those labels approximates); with the tail correction the energy is lower by the
    mean-field cohesion beyond the cutoff (and the shift's mean-field value)."""
    from hmc_core.phase_system import PhaseSystem

    atoms = bulk("Ar", "fcc", 5.26, cubic=True).repeat((4, 4, 4))  # 21 Å: more than twice the 10.2 Å cutoff
    atoms.rattle(0.05, seed=3)
    atoms.calc = LennardJones(**LabelSettings(labeler="ase:lj").method_key()["parameters"])
    from hmc_core.potentials.base import ForceField

    def energy_forces(tail: bool):
        field = ForceField(PhaseSystem("Ar", tail_correction=tail).potential(), atoms.numbers, atoms.cell.array,
                           atoms.pbc)
        return field.energy_forces(atoms.positions.copy())

    e_bare, f_bare = energy_forces(False)
    assert e_bare == pytest.approx(atoms.get_potential_energy(), rel=1e-12)
    np.testing.assert_allclose(f_bare, atoms.get_forces(), rtol=1e-10, atol=1e-12)
    e_tail, f_tail = energy_forces(True)
    np.testing.assert_allclose(f_tail, f_bare, rtol=1e-12, atol=1e-14)
    assert -0.03 < (e_tail - e_bare) / len(atoms) < -0.002  # the tail binds (eV/atom; ε = 10.3 meV)
    assert PhaseSystem("Ar", tail_correction=False).describe()["tail_correction"] == 0


def test_lj_labels_equal_ase_lennard_jones_periodic_and_not():
    structures = [_argon_solid(), _argon_cluster()]
    labels = label_atoms(structures, LabelSettings(labeler="ase:lj"))
    p = LabelSettings(labeler="ase:lj").method_key()["parameters"]
    _assert_equals_direct(labels, structures, lambda: LennardJones(**p))
    assert labels["stress"].attrs["units"] == "eV/Å³" and list(labels["voigt"].values) == ["xx", "yy", "zz", "yz",
                                                                                           "xz", "xy"]
    assert np.any(labels["stress"].values[0] != 0)
    assert labels.attrs["label_labeler"] == labels.attrs["label_method"] == "ase:lj"
    assert json.loads(labels.attrs["label_parameters"]) == p
    # other parameters, given explicitly (smooth cutoff)
    q = {"epsilon": 0.02, "sigma": 3.3, "rc": 8.0, "smooth": True, "ro": 6.0}
    labels = label_atoms(structures, LabelSettings(labeler="ase:lj", parameters=q))
    _assert_equals_direct(labels, structures, lambda: LennardJones(**q))


def test_emt_labels_equal_ase_emt_periodic_and_not():
    solid = bulk("Cu", "fcc", 3.61, cubic=True).repeat((2, 2, 1))
    solid.rattle(0.03, seed=3)
    cluster = Atoms("Cu3", positions=[[0, 0, 0], [2.5, 0, 0], [1.2, 2.1, 0.3]])  # 87 electrons: odd is fine here
    labels = label_atoms([solid, cluster], LabelSettings(labeler="ase:emt"))
    _assert_equals_direct(labels, [solid, cluster], EMT)
    assert labels.attrs["label_calculator"] == "ase.calculators.emt:EMT"


def test_xtb_water_equals_tblite_called_directly():
    require_module("tblite")
    from tblite.ase import TBLite

    water = molecule("H2O")
    water.positions[1] += [0.02, -0.03, 0.01]
    labels = label_atoms([water], LabelSettings(labeler="ase:xtb"))
    _assert_equals_direct(labels, [water], lambda: TBLite(method="GFN2-xTB", verbosity=0))
    assert "stress" not in labels
    assert json.loads(labels.attrs["label_parameters"])["method"] == "GFN2-xTB"
    assert "tblite" in json.loads(labels.attrs["label_versions"])


def test_registered_calculator_class_with_parameters():
    params = {"epsilon": 0.7, "r0": 2.8, "rho0": 5.0, "rcut1": 5.0, "rcut2": 7.0}
    structures = [_argon_cluster(), _argon_solid()]
    settings = LabelSettings(labeler="ase", calculator="ase.calculators.morse:MorsePotential", parameters=params)
    labels = label_atoms(structures, settings)
    _assert_equals_direct(labels, structures, lambda: MorsePotential(**params))
    assert labels.attrs["label_calculator"] == "ase.calculators.morse:MorsePotential"


# ---- cache, failures, workers, the stage ----------------------------------------------------------------------

def test_cache_hits_are_identical_and_a_changed_parameter_misses(tmp_path):
    structures = [_argon_solid(), _argon_cluster()]
    settings = LabelSettings(labeler="ase:lj")
    first = label_atoms(structures, settings, cache_dir=tmp_path)
    again = label_atoms(structures, settings, cache_dir=tmp_path)
    assert list(first["cache_hit"].values) == [0, 0] and list(again["cache_hit"].values) == [1, 1]
    for name in ("energy", "forces", "stress", "wall_time"):
        np.testing.assert_array_equal(again[name].values, first[name].values)
    other = label_atoms(structures, LabelSettings(labeler="ase:lj", parameters={"sigma": 3.3}), cache_dir=tmp_path)
    assert list(other["cache_hit"].values) == [0, 0]
    assert np.all(other["energy"].values != first["energy"].values)
    emt = LabelSettings(labeler="ase", calculator="ase.calculators.morse:MorsePotential")
    assert list(label_atoms(structures, emt, cache_dir=tmp_path)["cache_hit"].values) == [0, 0]


def test_cache_entry_with_a_bad_stress_is_recomputed(tmp_path):
    from tasks.label_cache import LabelCache, entry_arrays, write_entry

    solid = _argon_solid()
    settings = LabelSettings(labeler="ase:lj")
    good = label_atoms([solid], settings, cache_dir=tmp_path)
    path = next(tmp_path.rglob("*.npz"))
    with np.load(path) as data:
        assert data["stress"].shape == (6,)
        import ase

        assert json.loads(str(data["provenance"]))["ase"] == ase.__version__
    from tasks.ase_labeler import spec_of
    from tasks.label_cache import LabelQuestion

    spec = spec_of(settings)
    q = LabelQuestion(solid.numbers, solid.positions, solid.cell.array, solid.pbc, spec.method_key(), spec.identity(),
                      settings.position_tolerance)
    assert LabelCache(tmp_path).path(q.family, q.key) == path
    planted = entry_arrays(q, 1.0, np.zeros((len(solid), 3)), 0, 0.0, "none", None, "", stress=np.full(6, np.nan))
    write_entry(path, planted)
    again = label_atoms([solid], settings, cache_dir=tmp_path)
    assert again["cache_hit"].values[0] == 0
    np.testing.assert_array_equal(again["stress"].values, good["stress"].values)


class Strict(Calculator):
    """A calculator that checks its one parameter when built."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, alpha: float = 1.0, **kwargs):
        if alpha <= 0:
            raise ValueError("alpha must\npositive".replace("\n", " be "))
        super().__init__(**kwargs)


class Flaky(Calculator):
    """A calculator that raises on three atoms, returns NaN on four, and a pair energy otherwise."""

    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        n = len(self.atoms)
        if n == 3:
            raise RuntimeError("SCC did not converge\nafter 250 cycles")
        self.results = {"energy": np.nan if n == 4 else -float(n), "forces": np.zeros((n, 3))}


def test_a_calculator_that_raises_gives_failed_labels_and_the_batch_goes_on():
    structures = [Atoms("Ar2", positions=[[0, 0, 0], [3.8, 0, 0]]),
                  Atoms("Ar3", positions=[[0, 0, 0], [3.8, 0, 0], [0, 3.8, 0]]),
                  Atoms("Ar4", positions=[[0, 0, 0], [3.8, 0, 0], [0, 3.8, 0], [0, 0, 3.8]])]
    labels = label_atoms(structures, LabelSettings(labeler="ase", calculator="test_ase_labeler:Flaky"))
    assert list(labels["status"].values) == ["ok", "failed", "failed"]
    assert labels["energy"].values[0] == -2.0
    assert labels["reason"].values[1] == "RuntimeError: SCC did not converge after 250 cycles"
    assert "non-finite" in labels["reason"].values[2]
    assert np.all(np.isnan(labels["energy"].values[1:])) and np.all(np.isnan(labels["forces"].values[1:]))
    result = run_label(LabelInputs(from_atoms(structures)),
                       LabelSettings(labeler="ase", calculator="test_ase_labeler:Flaky"))
    assert (result.n_ok, result.n_failed) == (1, 2)


class WhoAmI(Calculator):
    """Energy = −(process id): tells which process computed a label."""

    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = {"energy": -float(os.getpid()), "forces": np.zeros((len(self.atoms), 3))}


def test_the_call_s_worker_count_and_progress_are_honoured():
    structures = [_argon_cluster(seed) for seed in range(3)]
    settings = LabelSettings(labeler="ase", calculator="test_ase_labeler:WhoAmI", n_workers=2)
    seen = []
    labels = label_configurations(from_atoms(structures), settings, n_workers=1,
                                  progress=lambda done, total: seen.append((done, total)))
    assert list(labels["energy"].values) == [-float(os.getpid())] * 3  # n_workers=1 of the call: in this process
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_parallel_workers_equal_serial_and_fill_the_cache(tmp_path):
    structures = [_argon_solid(seed) for seed in range(4)]
    settings = LabelSettings(labeler="ase:lj", n_workers=2)
    serial = label_atoms(structures, settings, n_workers=1)
    parallel = label_atoms(structures, settings, cache_dir=tmp_path)
    for name in ("energy", "forces", "stress"):
        np.testing.assert_array_equal(parallel[name].values, serial[name].values)
    assert len(list(tmp_path.rglob("*.npz"))) == 4


def test_stage_output_goes_into_a_campaign_store(tmp_path):
    from flows.store import CampaignStore

    store = CampaignStore(tmp_path / "c")
    store.root.mkdir()
    result = run_label(LabelInputs(from_atoms([_argon_solid(), _argon_solid(5)]), str(tmp_path / "cache")),
                       LabelSettings(labeler="ase:lj"))
    assert (result.n_ok, result.n_failed) == (2, 0)
    store.add_labels(result.labels, -1, "start")
    back = read_netcdf(store.labels_path)
    np.testing.assert_array_equal(back["stress"].values, result.labels["stress"].values)
    assert back.attrs["label_labeler"] == "ase:lj" and list(back["status"].values) == ["ok", "ok"]
    from flows.plots import _method

    assert _method(store) == "ASE ase:lj (LennardJones)"


def test_existing_stress_is_replaced_or_dropped():
    solid = _argon_solid()
    solid.calc = LennardJones(sigma=1.0)  # a stale stress from another potential
    solid.get_stress()
    cluster = _argon_cluster()
    configs = from_atoms([solid])
    assert "stress" in configs
    relabeled = label_configurations(configs, LabelSettings(labeler="ase:lj"))
    assert not np.allclose(relabeled["stress"].values, configs["stress"].values)
    molecular = label_configurations(from_atoms([solid, cluster]).isel(config=[1]), LabelSettings(labeler="ase:lj"))
    assert "stress" not in molecular


# ---- bad input: refused with one line before anything runs ------------------------------------------------------

BAD_SETTINGS = [
    ({"labeler": "ase:foo"}, "unknown labeler 'ase:foo'; choose pyscf, ase:lj, ase:emt, ase:xtb"),
    ({"labeler": "vasp"}, "unknown labeler 'vasp'"),
    ({"labeler": "ase"}, "needs calculator"),
    ({"labeler": "ase", "calculator": "no_such_package.calc:Calc"}, "cannot be imported (ModuleNotFoundError"),
    ({"labeler": "ase", "calculator": "ase.calculators.morse:Morse"}, "has no 'Morse'"),
    ({"labeler": "ase", "calculator": "ase.calculators.morse"}, "not an import path"),
    ({"labeler": "ase", "calculator": "ase.atoms:Atoms"}, "not an ASE calculator class"),
    ({"labeler": "ase", "calculator": "ase.calculators.morse:MorsePotential", "parameters": {"r_0": 1}},
     "unknown parameters ['r_0'] for ase.calculators.morse:MorsePotential; it takes epsilon"),
    ({"labeler": "ase", "calculator": "test_ase_labeler:Strict", "parameters": {"alpha": -1.0}},
     "test_ase_labeler:Strict rejected parameters {'alpha': -1.0} (ValueError: alpha must be positive)"),
    ({"labeler": "ase:lj", "calculator": "ase.calculators.lj:LennardJones"}, "only used with labeler = \"ase\""),
    ({"labeler": "ase:lj", "parameters": {"sigma": -1.0}}, "parameters.sigma = -1.0: Input should be greater than 0"),
    ({"labeler": "ase:lj", "parameters": {"epsilon": 0}}, "parameters.epsilon"),
    ({"labeler": "ase:lj", "parameters": {"rc": float("inf")}}, "parameters.rc = inf is not finite"),
    ({"labeler": "ase:lj", "parameters": {"sigma": float("nan")}}, "parameters.sigma = nan is not finite"),
    ({"labeler": "ase:lj", "parameters": {"cutoff": 8.0}}, "parameters.cutoff = 8.0: unknown parameter (parameters: "
                                                           "epsilon, sigma, rc, smooth, ro)"),
    ({"labeler": "ase:lj", "parameters": {"smooth": True, "ro": 12.0}}, "ro = 12.0 must be smaller than rc"),
    ({"labeler": "ase:lj", "parameters": {"sigma": None}}, "a NoneType is not allowed"),
    ({"labeler": "ase:lj", "parameters": {"sigma": [1.0, object()]}}, "parameters.sigma[1]"),
    ({"labeler": "ase:emt", "parameters": {"asap_cutoff": "maybe"}}, "parameters.asap_cutoff"),
    ({"labeler": "ase:xtb", "parameters": {"method": "GFN0-xTB"}}, "'GFN2-xTB' or 'GFN1-xTB'"),
    ({"labeler": "ase:xtb", "parameters": {"multiplicity": 0}}, "parameters.multiplicity"),
    ({"labeler": "ase:xtb", "parameters": {"solvation": "water"}}, "parameters.solvation = 'water': unknown"),
    ({"labeler": "ase:xtb", "charge": 1}, "charge and spin are PySCF settings"),
    ({"labeler": "ase:lj", "spin": 2}, "charge and spin are PySCF settings"),
    ({"parameters": {"sigma": 3.0}}, "calculator and parameters are for ASE labelers"),
    ({"calculator": "ase.calculators.lj:LennardJones"}, "calculator and parameters are for ASE labelers"),
]


# ids from the expected message, not str(values): an object() in the values prints its address, which differs
# between pytest-xdist workers (they must collect the same test ids)
@pytest.mark.parametrize(("values", "match"), BAD_SETTINGS, ids=[f"{k}-{m}" for k, (_, m) in enumerate(BAD_SETTINGS)])
def test_bad_settings_are_refused_with_one_line(values, match):
    if values.get("labeler") == "ase:xtb":
        require_module("tblite")
    t0 = time.perf_counter()
    with pytest.raises(ValidationError) as info:
        LabelSettings(**values)
    message = info.value.errors()[0]["msg"]
    assert match in message and "\n" not in message, message
    assert time.perf_counter() - t0 < 2


@pytest.mark.parametrize(("structure", "labeler", "match"), [
    (Atoms("Ar2", positions=[[0, 0, 0], [3.8, 0, 0]]), "ase:emt", "element Ar (Z=18) is not covered by labeler "
                                                                  "'ase:emt' (EMT covers Ag, Al, Au, C, Cu"),
    (Atoms("FrH", positions=[[0, 0, 0], [2.5, 0, 0]]), "ase:xtb", "element Fr (Z=87) is not covered by labeler "
                                                                  "'ase:xtb' (GFN2-xTB covers H–Rn"),
    (Atoms("Ar2", positions=[[0, 0, 0], [0.3, 0, 0]]), "ase:lj", "closer than min_distance"),
    (Atoms("Ar2", positions=[[0, 0, 0], [np.nan, 0, 0]]), "ase:lj", "NaN or inf"),
    (Atoms("Ar2", positions=[[0, 0, 0], [3.8, 0, 0]], cell=[[5, 0, 0], [0, 5, 0], [0, 0, 0]], pbc=True), "ase:lj",
     "zero volume"),
])
def test_bad_batches_are_refused_before_any_calculation(structure, labeler, match):
    if labeler == "ase:xtb":
        require_module("tblite")
    settings = LabelSettings(labeler=labeler)
    configs = from_atoms([structure])
    with pytest.raises(LabelInputError, match=re.escape(match)):
        check_batch(configs, settings)
    with pytest.raises(LabelInputError, match=re.escape(match)):
        label_configurations(configs, settings)


def test_ase_batches_skip_the_pyscf_checks():
    """Odd electron counts (Cu3) and elements without a PySCF basis are no concern of an ASE labeler."""
    check_batch(from_atoms([Atoms("Cu3", positions=[[0, 0, 0], [2.5, 0, 0], [1.2, 2.1, 0]])]),
                LabelSettings(labeler="ase:emt"))
    with pytest.raises(LabelInputError, match="parity"):
        check_batch(from_atoms([Atoms("Cu3", positions=[[0, 0, 0], [2.5, 0, 0], [1.2, 2.1, 0]])]),
                    LabelSettings(method="hf", basis="sto-3g", density_fit=False))


def test_campaign_keys_round_trip_and_pyscf_campaign_files_are_unchanged():
    import tomllib

    from flows.config import parse_config

    cfg = parse_config({"system": {"builtin": "ar13"},
                        "labeling": {"labeler": "ase:lj", "basis": "sto-3g", "parameters": {"sigma": 3.4, "rc": 9.0}}})
    text = cfg.to_toml()
    labeling = tomllib.loads(text)["labeling"]
    assert labeling["labeler"] == "ase:lj" and labeling["parameters"] == {"sigma": 3.4, "rc": 9.0}
    assert "basis" not in labeling and "method" not in labeling  # PySCF keys an ASE labeler ignores
    assert parse_config(tomllib.loads(text)).labeling.label_settings() == cfg.labeling.label_settings()
    assert cfg.with_overrides(stopping={"max_iterations": 1}).labeling.parameters == {"sigma": 3.4, "rc": 9.0}
    pyscf = tomllib.loads(parse_config({"labeling": {"method": "hf"}}).to_toml())["labeling"]
    assert not {"labeler", "calculator", "parameters"} & set(pyscf) and pyscf["method"] == "hf"
    settings = LabelSettings(method="hf", basis="sto-3g")
    assert "labeler" not in json.loads(settings.model_dump_json())
    assert "labeler" not in settings.method_key()


# ---- the command line: `pesflow label` and a campaign file via `pesflow run` -------------------------------------

def _water(t):
    p = t / "water.xyz"
    p.write_text("3\n\nO 0 0 0\nH 0.76 0.59 0\nH -0.76 0.59 0\n")
    return p


def _argon_file(t, symbol="Ar"):
    p = t / "dimer.xyz"
    p.write_text(f"2\n\n{symbol} 0 0 0\n{symbol} 0 0 3.8\n")
    return p


LABEL_CASES = [
    (["--labeler", "ase:foo"], "unknown labeler 'ase:foo'"),
    (["--labeler", "ase", "--calculator", "no_such_package:Calc"], "cannot be imported"),
    (["--labeler", "ase:lj", "--parameters", "{sigma: 3}"], "--parameters = '{sigma: 3}' is not JSON"),
    (["--labeler", "ase:lj", "--parameters", "[3.4]"], "must be a JSON object"),
    (["--labeler", "ase:lj", "--parameters", '{"sigma": -3}'], "parameters.sigma = -3"),
    (["--labeler", "ase:lj", "--parameters", '{"sigmaa": 3}'], "parameters.sigmaa = 3: unknown parameter"),
    (["--labeler", "ase:emt"], "element Ar (Z=18) is not covered"),
    (["--parameters", '{"sigma": 3}'], "calculator and parameters are for ASE labelers"),
]


@pytest.mark.parametrize(("options", "words"), LABEL_CASES, ids=[" ".join(o) for o, _ in LABEL_CASES])
def test_bad_label_command_lines(tmp_path, capsys, options, words):
    _case_error(capsys, ["label", _argon_file(tmp_path), "--out", tmp_path / "out.nc", *options], words)
    assert not (tmp_path / "out.nc").exists()


def test_label_command_with_an_ase_labeler(tmp_path, capsys):
    from flows.cli import main

    out = tmp_path / "out.nc"
    code = main(["label", str(_argon_file(tmp_path)), "--out", str(out), "--labeler", "ase:lj", "--parameters",
                 '{"sigma": 3.3}', "--cache-dir", str(tmp_path / "cache"), "--workers", "1"])
    assert code in (0, None), capsys.readouterr().err
    labels = read_netcdf(out)
    direct = Atoms("Ar2", positions=[[0, 0, 0], [0, 0, 3.8]])
    direct.calc = LennardJones(**LabelSettings(labeler="ase:lj", parameters={"sigma": 3.3}).method_key()["parameters"])
    np.testing.assert_allclose(labels["energy"].values[0], direct.get_potential_energy(), **TIGHT)


CAMPAIGN_CASES = [  # ([labeling] body replacing the good PySCF keys, words, [system] body or "")
    ('labeler = "ase:foo"', "unknown labeler 'ase:foo'", ""),
    ('labeler = "ase"', "needs calculator", ""),
    ('labeler = "ase"\ncalculator = "no_such_package.calc:Calc"', "cannot be imported", ""),
    ('labeler = "ase:lj"\nparameters = {sigma = -1.0}', "[labeling]: labeler 'ase:lj': parameters.sigma = -1.0", ""),
    ('labeler = "ase:lj"\nparameters = {cutoff = 8.0}', "parameters.cutoff = 8.0: unknown parameter", ""),
    ('labeler = "ase:lj"\nparameters = {sigma = nan}', "parameters.sigma = nan is not finite", ""),
    ('labeler = "ase:lj"\nparameters = 3', "[labeling] parameters = 3", ""),
    ('labeler = "ase:xtb"\nparameters = {method = "GFN0-xTB"}', "'GFN2-xTB' or 'GFN1-xTB'", ""),
    ('labeler = "ase:lj"\ncharge = 1', "charge and spin are PySCF settings", ""),
    ("parameters = {sigma = 3.0}", "calculator and parameters are for ASE labelers", ""),
    ('labeler = "ase:emt"', "[labeling] cannot label the starting set: config 0: element Ar (Z=18) is not covered",
     'builtin = "ar13"\nmin_distance = 2.0'),
]


@pytest.mark.parametrize(("body", "words", "system"), CAMPAIGN_CASES,
                         ids=[b.replace("\n", "; ") for b, _, _ in CAMPAIGN_CASES])
def test_bad_campaign_labeling_keys(tmp_path, capsys, body, words, system):
    if "xtb" in body:
        require_module("tblite")
    path = _config(tmp_path, "system", system) if system else _config(tmp_path, "", "")
    path.write_text(path.read_text().replace('method = "hf"\nbasis = "sto-3g"\ndensity_fit = false', body))
    assert body in path.read_text()
    _case_error(capsys, ["run", path, "--dir", tmp_path / "c"], words)
    assert not (tmp_path / "c" / "campaign.toml").exists()


def test_readme_labeling_snippet_is_a_valid_campaign_section():
    """The README's ```toml block with ``labeler`` is valid, as written and with its commented alternative."""
    import tomllib
    from pathlib import Path

    from flows.config import parse_config

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = [b for b in re.findall(r"^```toml\n(.*?)^```", readme, re.S | re.M) if 'labeler = "ase' in b]
    assert blocks
    for block in blocks:
        active = "\n".join(line for line in block.splitlines() if not line.startswith("# "))
        alternative = "[labeling]\n" + "\n".join(line[2:] for line in block.splitlines()
                                                 if line.startswith("# ") and "=" in line)
        for text in (active, alternative):
            cfg = parse_config({"system": {"builtin": "ar13"}, **tomllib.loads(text)})
            assert cfg.labeling.labeler.startswith("ase")
