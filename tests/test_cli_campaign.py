"""Campaign CLI: `pesflow run` killed with SIGKILL and resumed (no label lost or recomputed), then `status`,
`plot`, `fit` on the finished campaign, `label` on a file, and bad inputs (one-line errors, exit code 2).

The campaign runs against a real local Prefect server started here (127.0.0.1, free port, own PREFECT_HOME).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from prefect_server import BIN, prefect_env, prefect_server, stop, wait_for
from test_campaign import TINY

from flows.cli import main


def _cache_files(directory: Path) -> dict[str, int]:
    return {str(p.relative_to(directory)): p.stat().st_mtime_ns for p in (directory / "label_cache").rglob("*.npz")}


@pytest.fixture
def resumed(tmp_path_factory):
    """Start `pesflow run`, SIGKILL it once iteration 0's labels are on disk, run the same command again."""
    tmp = tmp_path_factory.mktemp("cli")
    cfg = tmp / "tiny.toml"
    cfg.write_text(TINY.format(name="cli-tiny", iterations=1, executor="default", workers=1))
    directory = tmp / "campaign"
    cmd = [str(BIN / "pesflow"), "run", str(cfg), "--dir", str(directory)]
    with prefect_server(tmp / "prefect") as (_, env):
        log = open(tmp / "first.log", "w")  # noqa: SIM115
        first = subprocess.Popen([*cmd, "--no-plots"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            marker = directory / "iterations" / "000" / "label.done.json"
            wait_for(lambda: marker.exists() or first.poll() is not None, 600, "iteration 0's labels", every=0.1)
            killed = first.poll() is None
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
        finally:
            stop(first)
            log.close()
        before = xr.open_dataset(directory / "labels.nc").load()
        cache_before = _cache_files(directory)
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    return {"dir": directory, "before": before, "cache_before": cache_before, "killed": killed,
            "output": second.stdout + second.stderr, "tmp": tmp}


def test_resume_after_kill_then_status_plot_fit(resumed, capsys):
    """One campaign (the slow part) serves both checks, so that pytest-xdist does not run it twice."""
    check_resume(resumed)
    check_status_plot_and_fit(resumed, capsys)


def check_resume(resumed):
    """No label written before the kill is lost or recomputed, and the campaign completes."""
    directory, before = resumed["dir"], resumed["before"]
    assert resumed["killed"], "the first run finished before it could be killed"
    after = xr.open_dataset(directory / "labels.nc").load()
    assert (directory / "DONE.json").exists()
    # every label written before the kill is still there, bit for bit
    n = before.sizes["config"]
    assert after.sizes["config"] >= n
    for name in ("positions", "energy", "forces"):
        np.testing.assert_array_equal(after[name].values[:n], before[name].values)
    # no finished PySCF calculation was repeated: cache files from before the kill were not rewritten, and
    # the cache holds exactly one file per successful label (start, candidates, test set)
    cache_after = _cache_files(directory)
    assert all(cache_after.get(k) == v for k, v in resumed["cache_before"].items())
    test = xr.open_dataset(directory / "test_set.nc").load()
    n_ok = int(np.sum(after["status"].values.astype(str) == "ok") + np.sum(test["status"].values.astype(str) == "ok"))
    assert len(cache_after) == n_ok
    # the summary table and the wall-time split were printed
    assert "wall time per stage" in resumed["output"] and "stopped: iteration budget" in resumed["output"]


def check_status_plot_and_fit(resumed, capsys):
    """`status`, `plot` and `fit` on the finished (resumed) campaign."""
    directory = resumed["dir"]
    assert main(["status", str(directory)]) == 0
    assert "iteration budget" in capsys.readouterr().out
    plots = resumed["tmp"] / "plots"
    assert main(["plot", str(directory), "--out", str(plots)]) == 0
    for name in ("learning_curve", "parity", "energy_traces", "grade_histograms"):
        assert (plots / f"{name}.png").stat().st_size > 5000
    out = resumed["tmp"] / "refit.mtp"
    assert main(["fit", str(directory), "--out", str(out)]) == 0
    from hmc_core.mtp import read_mtp

    assert read_mtp(out).n_basis > 0
    assert "test" in capsys.readouterr().out


def test_label_command_writes_pyscf_labels(tmp_path, capsys):
    from ase import Atoms
    from ase.io import write

    write(tmp_path / "h2.xyz", [Atoms("H2", positions=[[0, 0, 0], [0, 0, d]]) for d in (0.70, 0.75)])
    out = tmp_path / "h2.nc"
    assert main(["label", str(tmp_path / "h2.xyz"), "--workers", "1", "--cache-dir", str(tmp_path / "cache"),
                 "--out", str(out)]) == 0
    ds = xr.open_dataset(out).load()
    assert list(ds["status"].values.astype(str)) == ["ok", "ok"]
    # HF/STO-3G H2 at 0.70–0.75 Å: about −1.117 Hartree = −30.4 eV (Szabo & Ostlund, table 3.7: −1.117 Ha at
    # 1.4 bohr); the force pulls the atoms together beyond the minimum (0.712 Å)
    assert np.all(np.abs(ds["energy"].values + 30.4) < 0.1)
    assert ds["forces"].values[1, 1, 2] < 0


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") <= 2
    return err


def test_bad_inputs_give_one_line_errors(tmp_path, capsys):
    assert "no such campaign configuration" in _error(capsys, ["run", str(tmp_path / "missing.toml")])
    bad = tmp_path / "bad.toml"
    bad.write_text("[hmc]\ntemperature = 300\n")
    msg = _error(capsys, ["run", str(bad)])
    assert "unknown key [hmc] temperature" in msg and "temperatures" in msg
    bad.write_text("[labeling]\nbasis = 'no-such-basis'\n")
    assert "unknown basis" in _error(capsys, ["run", str(bad)])
    bad.write_text('[system]\nstructure = "nowhere.xyz"\n')
    assert "no such structure file" in _error(capsys, ["run", str(bad)])
    (tmp_path / "odd.xyz").write_text("2\n\nXq 0 0 0\nH 0 0 0.7\n")
    bad.write_text('[system]\nstructure = "odd.xyz"\n')
    assert "odd.xyz" in _error(capsys, ["run", str(bad)])  # unknown element symbol
    (tmp_path / "og.xyz").write_text("3\n\nOg 0 0 0\nH 0 0 2.0\nH 0 0 -2.0\n")
    bad.write_text('[system]\nstructure = "og.xyz"\n')
    assert "element Og (Z=118) is not covered" in _error(capsys, ["run", str(bad)])
    bad.write_text('[system]\nbuiltin = "unobtainium"\n')
    assert "unknown built-in system" in _error(capsys, ["run", str(bad)])
    assert "no such structure file" in _error(capsys, ["label", str(tmp_path / "missing.xyz")])
    assert "not a campaign directory" in _error(capsys, ["status", str(tmp_path)])
    assert "not a campaign directory" in _error(capsys, ["plot", str(tmp_path)])
    assert "not a campaign directory" in _error(capsys, ["fit", str(tmp_path)])


def test_deploy_without_a_server_is_a_clear_error(capsys, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert "PREFECT_API_URL is not set" in _error(capsys, ["deploy"])


def test_help_lists_the_campaign_commands():
    out = subprocess.run([sys.executable, "-m", "flows.cli", "--help"], capture_output=True, text=True,
                         env=prefect_env(Path("/tmp"), None), timeout=120).stdout
    for name in ("run", "label", "fit", "status", "plot", "ui", "deploy"):
        assert name in out
