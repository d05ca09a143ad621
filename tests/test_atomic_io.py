"""Durable atomic writes (hmc_core.atomic_io): umask modes, no debris on failure, stale temporaries of dead writers."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from hmc_core.atomic_io import atomic_target, current_umask, default_file_mode, remove_stale_temporaries
from hmc_core.configurations import make_configurations, read_netcdf, write_netcdf


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    try:
        yield 0o027
    finally:
        os.umask(old)


def test_umask_is_read_without_changing_it(umask_027):
    assert current_umask() == 0o027 and default_file_mode() == 0o640
    assert current_umask() == 0o027


def test_write_netcdf_gives_the_umask_mode_not_0600(tmp_path, umask_027):
    ds = make_configurations([np.zeros((1, 3))], [[1]])
    path = write_netcdf(ds, tmp_path / "out.nc")
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask_027 == 0o640
    os.umask(0o002)
    write_netcdf(ds, path)  # replacing keeps no trace of the old mode: a new file with the new umask
    assert path.stat().st_mode & 0o777 == 0o664
    assert read_netcdf(path)["species"].values.tolist() == [[1]]
    assert [p.name for p in tmp_path.iterdir()] == ["out.nc"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_target(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_only_temporaries_of_dead_or_ancient_writers_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)  # exited and reaped: no such process any more (pid reuse within ms is negligible)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        from hmc_core.atomic_io import _host

        host = _host()
        names = {
            "dead": f".k1.npz~{host}~{dead_pid}~abc.tmp",
            "live": f".k2.npz~{host}~{live.pid}~abc.tmp",
            "mine": f".k3.npz~{host}~{os.getpid()}~abc.tmp",
            "other_host": f".k4.npz~elsewhere~{dead_pid}~abc.tmp",
            "old_other_host": f".k5.npz~elsewhere~{live.pid}~abc.tmp",
            "no_writer": ".k6.npz.abc123.tmp",
        }
        for name in names.values():
            (tmp_path / name).write_bytes(b"x")
        (tmp_path / "k7.npz").write_bytes(b"a real entry")
        old = time.time() - 7200
        os.utime(tmp_path / names["old_other_host"], (old, old))
        removed = {p.name for p in remove_stale_temporaries(tmp_path)}
        assert removed == {names["dead"], names["old_other_host"]}
        left = {p.name for p in tmp_path.iterdir()}
        assert left == {names[k] for k in ("live", "mine", "other_host", "no_writer")} | {"k7.npz"}
        assert {p.name for p in remove_stale_temporaries(tmp_path, max_age=0.0)} == left - {"k7.npz"}
    finally:
        live.kill()
        live.wait()
