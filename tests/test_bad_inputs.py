"""The bad-input catalogue (issue 15 §4): every case is refused with a clear one-line error (exit status 2, no
traceback, the message names what is wrong and says how to fix it), before anything expensive starts: no case
may start a Prefect server or a PySCF calculation, so each must answer within seconds.

Cases are built from tables: campaign-file keys with bad values, structure files that cannot be right, command
line overrides and options, campaign directories and data files that are broken.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from flows.cli import main

GOOD = {"system": 'builtin = "H2O"\nn_start = 4\nn_test = 2',
        "labeling": 'method = "hf"\nbasis = "sto-3g"\ndensity_fit = false'}

# (section, key = value, words the message must contain)
CONFIG_CASES = [
    ("", "seed = -1", "seed"), ("", 'seed = "abc"', "seed"), ("", 'name = "has space"', "name"),
    ("", 'name = ""', "name"), ("", "bogus = 1", "unknown key bogus"), ("", "directory = 5", "directory"),
    ("system", 'builtin = "unobtainium"', "unknown built-in system"), ("system", "n_start = 1", "n_start"),
    ("system", "n_start = 0", "n_start"), ("system", "n_start = -3", "n_start"), ("system", "n_test = -1", "n_test"),
    ("system", "rattle = -0.1", "rattle"), ("system", "rattle = 5.0", "rattle"), ("system", "rattle = nan", "rattle"),
    ("system", "test_rattle = -1", "test_rattle"), ("system", "min_distance = 0", "min_distance"),
    ("system", "min_distance = -1", "min_distance"), ("system", "min_distance = inf", "min_distance"),
    ("system", 'structure = "nowhere.xyz"', "no such structure file"), ("system", "bogus = 1", "unknown key"),
    ("system", "rattle = 0.9\nmin_distance = 5.0", "min_distance"),
    ("system", 'builtin = "ar13"\nrattle = 0.3\nmin_distance = 3.6', "lower [system] rattle or min_distance"),
    ("system", 'builtin = "ar13"\nrattle = 0.01\ntest_rattle = 0.3\nmin_distance = 3.6', "test_rattle"),
    ("potential", "level = 7", "even"), ("potential", "level = 0", "level"), ("potential", "level = 30", "level"),
    ("potential", "cutoff = 0", "cutoff"), ("potential", "cutoff = -4", "cutoff"),
    ("potential", "cutoff = 100", "cutoff"),
    ("potential", "min_distance = 5.0\ncutoff = 4.0", "smaller than cutoff"), ("potential", "radial_basis_size = 1",
                                                                                "radial_basis_size"),
    ("potential", "energy_weight = -1", "energy_weight"), ("potential", "force_weight = -1", "force_weight"),
    ("potential", "energy_weight = 0\nforce_weight = 0", "cannot both be 0"),
    ("potential", "regularization = -1", "regularization"), ("potential", "max_iter = -1", "max_iter"),
    ("potential", 'full_fit = "maybe"', "full_fit"), ("potential", "tempreature = 1", "unknown key"),
    ("hmc", "temperatures = []", "temperatures"), ("hmc", "temperatures = [-5]", "temperatures"),
    ("hmc", "temperatures = [300, 0]", "temperatures[1]"), ("hmc", "temperatures = [nan]", "temperatures"),
    ("hmc", "temperatures = [1e9]", "temperatures"), ("hmc", 'temperatures = ["hot"]', "temperatures"),
    ("hmc", "temperature = 300", "unknown key [hmc] temperature"), ("hmc", "n_starts = 0", "n_starts"),
    ("hmc", "n_samples = 0", "n_samples"), ("hmc", "n_steps = 0", "n_steps"), ("hmc", "dt = 0", "dt"),
    ("hmc", "dt = -0.5", "dt"), ("hmc", "dt = 100", "dt"), ("hmc", "n_warmup = -1", "n_warmup"),
    ("hmc", 'integrator = "rk4"', "integrator"), ("hmc", "save_every = 0", "save_every"),
    ("selection", "threshold = 0.5", "threshold"), ("selection", "threshold = 5\nbreak_threshold = 5", "must exceed"),
    ("selection", "threshold = 5\nbreak_threshold = 3", "must exceed"), ("selection", "budget = 0", "budget"),
    ("selection", "threshold = nan", "threshold"), ("selection", "budget = 1.5", "budget"),
    ("selection", "max_isolation = 0", "max_isolation"), ("selection", "min_cell_shape = 1.5", "min_cell_shape"),
    ("selection", "min_cell_width = -1", "min_cell_width"), ("selection", "force_error_threshold = 0",
                                                              "force_error_threshold"),
    ("labeling", 'method = "ccsd"', "method"), ("labeling", 'basis = "no-such-basis"', "unknown basis"),
    ("labeling", 'method = "dft"\nfunctional = "nonsense-xc"', "unknown functional"),
    ("labeling", "spin = -1", "spin"), ("labeling", "n_workers = 0", "n_workers"),
    ("labeling", "max_memory = 10", "max_memory"), ("labeling", 'dispersion = "d5"', "dispersion"),
    ("labeling", 'method = "mp2"\ndensity_fit = true', "density_fit"), ("labeling", "conv_tol = 0", "conv_tol"),
    ("labeling", "bogus = 1", "unknown key"), ("labeling", 'cache_dir = "/proc/cache"', "cache_dir"),
    ("labeling", 'basis = "gth-szv"', "GTH valence basis"),
    ("labeling", "spin = 1", "spin"), ("labeling", "charge = 1", "spin"),
    ("stopping", "max_iterations = -1", "max_iterations"), ("stopping", "max_labels = 0", "max_labels"),
    ("stopping", "max_labels = 3", "below [system] n_start"), ("stopping", "force_rmse_target = 0",
                                                              "force_rmse_target"),
    ("stopping", "force_rmse_target = -1", "force_rmse_target"),
    ("stopping", "ensemble_force_rmse_target = 0.1", "add an [ensemble_test] section"),
    ("stopping", "ensemble_force_rmse_target = -1", "ensemble_force_rmse_target"),
    ("ensemble_test", "n_frames = 0", "n_frames"), ("ensemble_test", "burn_in = 1.0", "burn_in"),
    ("ensemble_test", "min_p_value = 2", "min_p_value"), ("ensemble_test", "atoms_per_frame = 0", "atoms_per_frame"),
    ("ensemble_test", "n_chains = 0", "n_chains"), ("ensemble_test", "n_sample = 5", "unknown key"),
    ("executor", 'kind = "pbs"', "kind"), ("executor", "n_workers = 0", "n_workers"),
    ("executor", 'address = "tcp://x:1"', "only used with kind"), ("executor", "threads_per_worker = 0",
                                                                   "threads_per_worker"),
]

# structure files (name, content, words)
STRUCTURE_CASES = [
    ("overlap.xyz", "3\n\nO 0 0 0\nH 0 0 0\nH 0 0.76 0.59\n", "apart"),
    ("duplicated.xyz", "4\n\nO 0 0 0\nH 0.76 0.59 0\nH 0.76 0.59 0\nH -0.76 0.59 0\n", "overlapping or duplicated"),
    ("nan.xyz", "3\n\nO 0 0 nan\nH 0.76 0.59 0\nH -0.76 0.59 0\n", "non-finite"),
    ("unknown.xyz", "2\n\nXq 0 0 0\nH 0 0 0.7\n", "unknown.xyz"),
    ("og.xyz", "3\n\nOg 0 0 0\nH 0 0 2.0\nH 0 0 -2.0\n", "element Og (Z=118) is not covered"),
    ("odd-electrons.xyz", "2\n\nO 0 0 0\nH 0 0 0.97\n", "parity"),
    ("empty.xyz", "", "empty.xyz"),
    ("garbage.xyz", "this is not a structure\n", "garbage.xyz"),
    ("types.cfg", "BEGIN_CFG\n Size\n 1\n AtomData: id type cartes_x cartes_y cartes_z\n 1 0 0 0 0\nEND_CFG\n",
     "species"),
]


def _case_error(capsys, argv, words: str | tuple[str, ...]) -> str:
    t0 = time.perf_counter()
    code = main([str(a) for a in argv])
    seconds = time.perf_counter() - t0
    captured = capsys.readouterr()
    err = captured.err
    assert code == 2, f"exit {code} for {argv}: {err[-500:]} {captured.out[-500:]}"
    assert "Traceback" not in err + captured.out
    assert err.startswith("error:") and err.strip().count("\n") <= 2, err
    for w in (words,) if isinstance(words, str) else words:
        assert w in err, f"{w!r} not in {err!r}"
    assert seconds < 30, f"{argv} took {seconds:.1f} s: something expensive started before the error"
    return err


def _lines(body: str) -> dict[str, str]:
    return {line.split("=")[0].strip(): line for line in body.splitlines() if line.strip()}


def _config(tmp_path: Path, section: str, body: str) -> Path:
    """The good campaign with the keys of ``body`` replaced (or added) in ``section`` ("" = top level)."""
    sections = {name: _lines(text) for name, text in GOOD.items()}
    if section:
        sections.setdefault(section, {}).update(_lines(body))
        if section == "system" and "structure" in _lines(body):
            sections["system"].pop("builtin", None)
    top = body if not section else ""
    text = top + "\n" + "\n".join(f"[{s}]\n" + "\n".join(b.values()) for s, b in sections.items())
    path = tmp_path / "campaign.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("section", "body", "words"), CONFIG_CASES,
                         ids=[f"{s or 'top'}:{b.splitlines()[-1]}" for s, b, _ in CONFIG_CASES])
def test_bad_campaign_file(tmp_path, capsys, section, body, words):
    _case_error(capsys, ["run", _config(tmp_path, section, body), "--dir", tmp_path / "c"], words)
    assert not (tmp_path / "c" / "campaign.toml").exists(), "a rejected configuration must not be saved"


@pytest.mark.parametrize(("name", "content", "words"), STRUCTURE_CASES, ids=[c[0] for c in STRUCTURE_CASES])
def test_bad_structure_file(tmp_path, capsys, name, content, words):
    (tmp_path / name).write_text(content)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[system]\nstructure = "{name}"\nn_start = 4\nn_test = 2\n[labeling]\n{GOOD["labeling"]}\n')
    _case_error(capsys, ["run", cfg, "--dir", tmp_path / "c"], words)
    assert not (tmp_path / "c" / "campaign.toml").exists()


def _good_config(tmp_path):
    return _config(tmp_path, "", "")


COMMAND_CASES = [
    (lambda t: ["run", t / "missing.toml"], "no such campaign configuration"),
    (lambda t: ["run", t], "campaign configuration"),  # a directory given as the config
    (lambda t: ["run", _good_config(t), "--max-iterations", "-1"], "max_iterations"),
    (lambda t: ["run", _good_config(t), "--dir", "/etc/hostname/campaign"], "is a file"),
    (lambda t: ["run", _good_config(t), "--dir", "/proc/pesflow-campaign"], "cannot be written"),
    (lambda t: ["run", _good_config(t), "--dir", _resumable(t, "labels.nc")], ("cannot resume", "labels.nc")),
    (lambda t: ["run", _good_config(t), "--dir", _resumable(t, "metrics.nc")], ("cannot resume", "metrics.nc")),
    (lambda t: ["label", _water(t), "--out", "/proc/pesflow-labels.nc"], "cannot be written"),
    (lambda t: ["label", t / "missing.xyz"], "no such structure file"),
    (lambda t: ["label", _water(t), "--workers", "0"], "workers"),
    (lambda t: ["label", _water(t), "--method", "ccsd"], "method"),
    (lambda t: ["label", _water(t), "--basis", "no-such-basis"], "unknown basis"),
    (lambda t: ["label", _water(t), "--spin", "-1"], "spin"),
    (lambda t: ["label", _water(t), "--out", t], "is a directory"),
    (lambda t: ["label", _water(t), "--out", "/etc/hostname/x.nc"], "is a file"),
    (lambda t: ["label", _cfg_file(t)], "species"),
    (lambda t: ["label", _cfg_file(t), "--species", "Qq"], "unknown element"),
    (lambda t: ["status", t], "not a campaign directory"),
    (lambda t: ["plot", t], "not a campaign directory"),
    (lambda t: ["fit", t], "not a campaign directory"),
    (lambda t: ["status", _broken_campaign(t, "campaign.toml", "this is [not toml")], "not valid TOML"),
    (lambda t: ["fit", _broken_campaign(t, "campaign.toml", "[hmc]\ntemperature = 3\n")], "unknown key"),
    (lambda t: ["fit", _broken_campaign(t, "labels.nc", "truncated"), "--level", "6"], "labels.nc"),
    (lambda t: ["fit", _broken_campaign(t, "labels.nc", "truncated"), "--level", "7"], "even"),
    (lambda t: ["status", _broken_campaign(t, "metrics.nc", "\x89HDF\r\n")], "metrics.nc"),
]


def _water(t: Path) -> Path:
    p = t / "water.xyz"
    p.write_text("3\n\nO 0 0 0\nH 0.76 0.59 0\nH -0.76 0.59 0\n")
    return p


def _cfg_file(t: Path) -> Path:
    p = t / "one.cfg"
    p.write_text("BEGIN_CFG\n Size\n 2\n Supercell\n 10 0 0\n 0 10 0\n 0 0 10\n"
                 " AtomData: id type cartes_x cartes_y cartes_z\n 1 0 0 0 0\n 2 0 3.7 0 0\nEND_CFG\n")
    return p


def _resumable(t: Path, broken: str) -> Path:
    """A campaign directory of the good configuration whose ``broken`` file is truncated."""
    from flows.config import load_config
    from flows.store import CampaignStore

    store = CampaignStore(t / "resumable")
    store.initialize(load_config(_good_config(t)).to_toml())
    (store.root / broken).write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    return store.root


def _broken_campaign(t: Path, name: str, content: str) -> Path:
    """A campaign directory with a valid campaign.toml and one broken file."""
    from flows.config import parse_config

    d = t / "campaign"
    d.mkdir(exist_ok=True)
    (d / "campaign.toml").write_text(parse_config({"labeling": {"method": "hf", "basis": "sto-3g"}}).to_toml())
    (d / name).write_text(content)
    return d


@pytest.mark.parametrize(("argv", "words"), COMMAND_CASES, ids=[f"cmd{i}" for i in range(len(COMMAND_CASES))])
def test_bad_command_line(tmp_path, capsys, argv, words):
    _case_error(capsys, argv(tmp_path), words)


# --potential FILE.mtp on the HMC commands (issue 16 §4): (argv from (tmp_path, shared data), words)
L10, PHASE_T = "cubic_level10.mtp", ["--t-min", "1000", "--t-max", "1400"]
POTENTIAL_CASES = [
    (lambda t, d: ["coexist", "--potential", t / "missing.mtp", "--species", "Cu", *PHASE_T],
     "no such potential file"),
    (lambda t, d: ["coexist", "--potential", _text(t, "not.mtp", "hello\n"), "--species", "Cu", *PHASE_T],
     "is this an MLIP .mtp file"),
    (lambda t, d: ["coexist", "--potential", t, "--species", "Cu", *PHASE_T], "is a directory"),
    (lambda t, d: ["coexist", "--potential", d / L10, *PHASE_T], ("does not name the elements", "--species")),
    (lambda t, d: ["coexist", "--potential", _tagged(t, d), "--species", "W", *PHASE_T], "contradicts"),
    (lambda t, d: ["coexist", "--potential", d / L10, "--species", "Cu,Li", *PHASE_T], "--species gives 2 elements"),
    (lambda t, d: ["coexist", "--potential", d / L10, "--species", "Qq", *PHASE_T], "unknown element symbol"),
    (lambda t, d: ["coexist", "--potential", d / "multi_level06.mtp", "--species", "Mo,Li,H", *PHASE_T],
     "one-component"),
    (lambda t, d: ["coexist", "--potential", d / "cubic_level16_untrained.mtp", "--species", "Cu", *PHASE_T],
     "untrained"),
    (lambda t, d: ["coexist", "--potential", d / "cubic_level16.mtp", "--species", "Cu", *PHASE_T],
     ("no minimum", "--lattice-constant")),
    (lambda t, d: ["coexist", "--potential", d / L10, "--species", "Cu", "--element", "Ar", *PHASE_T],
     ("--element applies to the built-in Lennard-Jones systems only", "drop --element")),
    (lambda t, d: ["melt", "--potential", d / L10, "--species", "Cu", "--cutoff", "2.5", *PHASE_T],
     "--cutoff applies to the built-in Lennard-Jones"),
    (lambda t, d: ["coexist", "--potential", d / L10, "--species", "Cu", "--no-tail-correction", *PHASE_T],
     "--tail-correction/--no-tail-correction applies to the built-in Lennard-Jones"),
    (lambda t, d: ["seed", "--potential", d / L10, "--species", "Cu", "--cutoff", "2.5", "-T", "1000",
                   "--melt-temperature", "3000"], "--cutoff applies to the built-in Lennard-Jones"),
    (lambda t, d: ["coexist", "--potential", d / L10, "--species", "Cu"], "--t-min and --t-max (K)"),
    (lambda t, d: ["seed", "--potential", d / L10, "--species", "Cu", "-T", "1000"], "--melt-temperature"),
    (lambda t, d: ["seed", "--potential", d / L10, "--species", "Cu", "--melt-temperature", "3000"], "-T"),
    (lambda t, d: ["coexist", "--potential", d / L10, "--species", "Cu", "--cells", "2", "2", "4", *PHASE_T],
     "twice the MTP's cutoff"),
    (lambda t, d: ["coexist", "--potential", d / L10, "--species", "Cu", "--lattice-constant", "-3", *PHASE_T],
     "positive"),
    (lambda t, d: ["melt", "--species", "Cu"], "--species describes a --potential"),
    (lambda t, d: ["coexist", "--lattice-constant", "3.6"], "--lattice-constant describes a --potential"),
    (lambda t, d: ["temper", "--potential", t / "missing.mtp", "--species", "Cu", "--t-min", "300", "--t-max", "900"],
     "no such potential file"),
    (lambda t, d: ["temper", "--potential", d / L10, "--species", "Cu"], "--t-min and --t-max (K)"),
    (lambda t, d: ["temper", "--species", "Cu"], "--species describes a --potential"),
    (lambda t, d: ["sample", "ar-fcc", "--potential", t / "missing.mtp", "--species", "Ar"], "no such potential file"),
    (lambda t, d: ["sample", "ar-fcc", "--potential", d / L10, "--species", "Cu"], "species [18] are not in this MTP"),
]


def _text(t: Path, name: str, content: str) -> Path:
    (t / name).write_text(content)
    return t / name


def _tagged(t: Path, d: Path) -> Path:
    """The level-10 fixture written by pesflow as a Cu potential (its potential_tag names the element)."""
    from hmc_core.mtp import read_mtp, write_mtp

    path = t / "cu.mtp"
    write_mtp(read_mtp(d / L10, species=[29]), path)
    return path


@pytest.mark.parametrize(("argv", "words"), POTENTIAL_CASES, ids=[f"potential{i}" for i in range(len(POTENTIAL_CASES))])
def test_bad_potential_option(tmp_path, capsys, shared_data, argv, words):
    """Bad --potential input on every HMC command: one line, exit 2, before any server or sampling starts."""
    _case_error(capsys, argv(tmp_path, shared_data / "mtp"), words)
    assert not list(tmp_path.glob("runs*")), "nothing may be written for a refused command"


def test_busy_directory_names_the_holder(tmp_path, capsys):
    from flows.config import load_config
    from flows.store import CampaignStore

    cfg = _good_config(tmp_path)
    directory = tmp_path / "c"
    store = CampaignStore(directory)
    store.initialize(load_config(cfg).to_toml())
    with store.locked():
        err = _case_error(capsys, ["run", cfg, "--dir", directory], ("another process", "pid", "since"))
    assert "run the same command again" in err


def test_catalogue_has_at_least_100_cases():
    assert len(CONFIG_CASES) + len(STRUCTURE_CASES) + len(COMMAND_CASES) + len(POTENTIAL_CASES) + 1 >= 100
