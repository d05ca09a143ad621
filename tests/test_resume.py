"""A campaign killed with SIGKILL at any moment and resumed ends with the same files as an uninterrupted run,
and the same configuration and seed give the same campaign whatever the worker count (issue 15 §1–§2).

Real parts throughout: `pesflow run` in a subprocess against a real local Prefect server, PySCF HF/STO-3G
labels, MTP fits, HMC exploration. "The same files": labels.nc (every variable but the per-label wall time),
metrics.nc (every column but the wall times in seconds) and final.mtp (byte for byte).
"""

from __future__ import annotations

import os
import signal
import subprocess

import numpy as np
import pytest
import xarray as xr
from prefect_server import BIN, prefect_server, stop, wait_for
from test_campaign import TINY

pytestmark = pytest.mark.slow

#: files whose appearance marks a kill moment: stage boundaries (markers) and moments inside a stage
KILL_AT = ("labels.nc",                          # start set labeled, its marker not yet written
           "test_set.nc",                        # before iteration 0
           "iterations/000/active_set.nc",       # inside iteration 0's fit (marker not yet written)
           "iterations/000/explore.done.json",   # explore → select boundary
           "iterations/000/candidates.nc",       # inside select
           "iterations/000/label.done.json",     # label → record boundary
           "metrics.nc",                         # iteration 0 recorded
           "iterations/001/samples.nc")          # inside iteration 1's explore


def _config(tmp, name, workers=1, iterations=2):
    path = tmp / f"{name}.toml"
    path.write_text(TINY.format(name=name, iterations=iterations, executor="default", workers=workers))
    return path


def _run(cfg, directory, env, *extra, kill_at=None, tmp=None):
    """`pesflow run`; with ``kill_at``, SIGKILL it once that file exists (returns whether it was still running)."""
    cmd = [str(BIN / "pesflow"), "run", str(cfg), "--dir", str(directory), "--no-plots", *extra]
    if kill_at is None:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout + done.stderr
    with open(tmp / f"kill-{kill_at.replace('/', '-')}.log", "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            target = directory / kill_at
            wait_for(lambda: target.exists() or proc.poll() is not None, 600, kill_at, every=0.02)
            alive = proc.poll() is None
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            stop(proc)
    return alive


def _labels(directory):
    """labels.nc without what may differ: per-label wall times and cache hits (a resumed run reads what the killed
    one computed), and the worker count in the settings record."""
    import json

    ds = xr.open_dataset(directory / "labels.nc").load()
    ds.attrs.pop("campaign_config", None)  # the worker count is part of the file's text
    if "label_settings" in ds.attrs:
        settings = json.loads(ds.attrs["label_settings"])
        for key in ("n_workers", "threads_per_worker"):
            settings.pop(key, None)
        ds.attrs["label_settings"] = json.dumps(settings, sort_keys=True)
    return ds.drop_vars([v for v in ("wall_time", "cache_hit") if v in ds])


def _metrics(directory):
    ds = xr.open_dataset(directory / "metrics.nc").load()
    ds.attrs.pop("campaign_config", None)
    return ds.drop_vars([v for v in ds.data_vars if v.endswith("_s")])


def _assert_same_campaign(a, b, what):
    xr.testing.assert_identical(_labels(a), _labels(b))
    xr.testing.assert_identical(_metrics(a), _metrics(b))
    assert (a / "final.mtp").read_bytes() == (b / "final.mtp").read_bytes(), f"final.mtp differs ({what})"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with prefect_server(tmp_path_factory.mktemp("prefect")) as (_, env):
        yield env


@pytest.fixture(scope="module")
def reference(server, tmp_path_factory):
    """The uninterrupted campaign (one label worker)."""
    tmp = tmp_path_factory.mktemp("reference")
    directory = tmp / "campaign"
    _run(_config(tmp, "resume"), directory, server)
    m = xr.open_dataset(directory / "metrics.nc").load()
    assert list(m["iteration"].values) == [0, 1, 2]
    assert m["n_new_labels"].values[0] >= 1, "the reference campaign must label something to test resumes"
    return directory


def test_same_seed_same_campaign_whatever_the_worker_count(server, reference, tmp_path):
    """Two label workers (parallel PySCF processes) instead of one: identical labels, metrics, final.mtp."""
    directory = tmp_path / "campaign"
    _run(_config(tmp_path, "resume", workers=2), directory, server)
    _assert_same_campaign(reference, directory, "2 workers")


@pytest.mark.parametrize("kill_at", KILL_AT)
def test_killed_and_resumed_campaign_equals_the_uninterrupted_one(server, reference, tmp_path, kill_at):
    directory = tmp_path / "campaign"
    cfg = _config(tmp_path, "resume")
    _run(cfg, directory, server, kill_at=kill_at, tmp=tmp_path)
    _run(cfg, directory, server)
    assert not [p for p in directory.rglob(".*.tmp") if "label_cache" not in p.parts]
    _assert_same_campaign(reference, directory, f"killed at {kill_at}")


def test_larger_budget_continues_and_keeps_finished_rows(server, reference, tmp_path):
    """A finished campaign resumed with a larger iteration budget continues; rows 0–1 stay as they were, the
    budget stop of row 2 is lifted and redone, and a third run with the same budget computes nothing."""
    import shutil

    directory = tmp_path / "campaign"
    shutil.copytree(reference, directory)
    cfg = _config(tmp_path, "resume")
    out = _run(cfg, directory, server, "--max-iterations", "3")
    m = _metrics(directory)
    ref = _metrics(reference)
    its = list(m["iteration"].values)
    assert its[:3] == [0, 1, 2] and len(its) in (3, 4)
    xr.testing.assert_identical(m.sel(iteration=[0, 1]), ref.sel(iteration=[0, 1]))
    last = str(m["stop_reason"].sel(iteration=its[-1]).item())
    assert last.startswith("iteration budget (3") if len(its) == 4 else last.startswith("converged")
    assert not str(m["stop_reason"].sel(iteration=2).item()).startswith("iteration budget (2")
    assert "wall time per stage (this run)" in out
    labels = _labels(directory)
    again = _run(cfg, directory, server, "--max-iterations", "3")
    xr.testing.assert_identical(_labels(directory), labels)
    assert "already finished" in again or "stopped" in again
    n = m["n_labels"].values
    assert np.all(np.diff(n) >= 0)
