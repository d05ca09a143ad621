"""Campaign configuration: the embedded default validates, bad keys and values give errors naming them."""

from __future__ import annotations

import pytest

from flows.config import DEFAULT_CONFIG, CampaignConfig, ConfigError, load_config, parse_config


def test_default_campaign_is_valid_and_round_trips(tmp_path):
    cfg = load_config()
    assert cfg.system.builtin and cfg.labeling.basis
    path = tmp_path / "again.toml"
    path.write_text(cfg.to_toml())
    again = load_config(path)
    assert again.model_dump(exclude={"source_dir"}) == cfg.model_dump(exclude={"source_dir"})
    assert DEFAULT_CONFIG.exists()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"hmc": {"tempratures": [300]}}, ["unknown key [hmc] tempratures", "allowed keys: temperatures"]),
        ({"hmc": {"temperatures": [300, -5]}}, ["[hmc] temperatures[1] = -5", "greater than 0"]),
        ({"executor": {"kind": "pbs"}}, ["[executor] kind = 'pbs'", "'default', 'dask' or 'slurm'"]),
        ({"potential": {"level": 7}}, ["[potential] level = 7", "even"]),
        ({"selection": {"threshold": 5.0, "break_threshold": 3.0}}, ["[selection]", "must exceed"]),
        ({"system": {"builtin": "H2O", "structure": "x.xyz"}}, ["[system]", "exactly one"]),
        ({"bogus": 1}, ["unknown key bogus", "allowed keys: name, seed"]),
        ({"labeling": {"n_workers": 0}}, ["[labeling] n_workers = 0"]),
    ],
)
def test_bad_keys_and_values_name_key_value_and_what_is_allowed(data, expected):
    with pytest.raises(ConfigError) as err:
        parse_config(data, "my.toml")
    msg = str(err.value)
    assert msg.startswith("my.toml: ") and "\n" not in msg
    for part in expected:
        assert part in msg


def test_structure_paths_are_relative_to_the_config_file(tmp_path):
    (tmp_path / "sub").mkdir()
    cfg_file = tmp_path / "sub" / "c.toml"
    cfg_file.write_text('[system]\nstructure = "mol.xyz"\n')
    cfg = load_config(cfg_file)
    assert cfg.system.builtin is None
    assert cfg.structure_path() == (tmp_path / "sub" / "mol.xyz").resolve()


def test_yaml_and_syntax_errors(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("name: yaml-run\nhmc:\n  n_samples: 10\n")
    assert load_config(y).hmc.n_samples == 10
    bad = tmp_path / "bad.toml"
    bad.write_text("[hmc\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.toml")


def test_models_are_frozen():
    cfg = CampaignConfig()
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        cfg.seed = 3
