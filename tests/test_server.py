"""pesflow's Prefect servers (flows/server.py) with real processes and real servers: a command's own server dies
with it on ``kill -9``; a stale server is cleaned on the next start; ``pesflow ui`` refuses foreign origins and
CSRF-less writes, serves pesflow's flow runs and stops its server on ``kill -TERM``; bad settings are one-line
errors; every command gets the environment defaults; the phase flows name their runs."""

from __future__ import annotations

import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prefect import flow
from prefect_server import BIN, free_port, prefect_env, prefect_server, stop, wait_for

from flows import reaper
from flows import server as srv
from flows.cli import main

MELT = ["melt", "--n-cells", "3", "--n-temperatures", "2", "--n-samples", "4", "--warmup", "2", "--workers", "1"]


def _port_closed(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) != 0


def _gone(pid: int) -> bool:
    """No such process, or a zombie (it holds no memory and no port; this container's init may not reap it)."""
    return srv.start_ticks(pid) is None


def _kill_if_alive(record) -> None:
    if record is not None and srv.alive(record.pid, record.ticks):
        os.kill(record.pid, signal.SIGKILL)


def _healthy_record(home: Path, proc: subprocess.Popen, log: Path, deadline_s: float = 600.0):
    def found():
        if proc.poll() is not None:
            raise AssertionError(f"command exited with {proc.returncode}: {log.read_text()[-3000:]}")
        return next((r for r in srv.read_records(home) if srv.healthy(r.api_url)), None)

    return wait_for(found, deadline_s, "a pesflow Prefect server to answer", every=0.2)


@pytest.fixture(scope="module")
def client_home(tmp_path_factory) -> Path:
    """One PREFECT_HOME/PESFLOW_HOME for this module's server tests: the first creates pesflow's Prefect database
    (the slow part of a first start), the others reuse it as a user's later commands do."""
    return tmp_path_factory.mktemp("client")


PARENT = """
import subprocess, sys, time
from flows.server import die_with_parent
child = subprocess.Popen(["sleep", "600"], preexec_fn=die_with_parent())
print(child.pid, flush=True)
time.sleep(600)
"""


def test_a_child_started_with_die_with_parent_dies_on_kill9_of_its_parent():
    """The mechanism behind every pesflow server (the full case with a server: the slow test below)."""
    proc = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    child = None
    try:
        child = int(proc.stdout.readline())
        assert not _gone(child)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        wait_for(lambda: _gone(child), 5, f"child {child} to die with its parent")
    finally:
        stop(proc)
        if child is not None and not _gone(child):
            os.kill(child, signal.SIGKILL)


@pytest.mark.slow
def test_kill9_of_a_flow_command_takes_its_server_down(tmp_path, client_home):
    """The issue-15 case: `kill -9` of a command that runs a flow left its server listening 90 s later.
    Slow: 38-48 s on a loaded 2-core machine (the command's imports, and the first start creates the database)."""
    env = prefect_env(client_home, None)
    home = Path(env["PESFLOW_HOME"]) / "prefect"
    log_path = tmp_path / "melt.log"
    record = None
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(BIN / "pesflow"), *MELT, "--out", str(tmp_path / "melt")], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            record = _healthy_record(home, proc, log_path)
            assert (record.kind, record.parent) == ("flow", proc.pid)
            status, _, body = _request(f"{record.api_url}/flows/filter", "POST", body={})
            assert status == 403 and b"CSRF" in body  # a command's own server is hardened too
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            wait_for(lambda: _gone(record.pid) and _port_closed(record.port), 10,
                     f"server {record.pid} (port {record.port}) to die with its command")
        finally:
            stop(proc)
            _kill_if_alive(record)
    # the next start finds the record of the dead server and forgets it
    done = srv.clean_stale(home)
    assert any(f"server {record.pid}" in line and "no longer running" in line for line in done), done
    assert srv.read_records(home) == []


ORPHAN = """
import os, subprocess, sys
from pathlib import Path
from flows import reaper
from flows import server as srv
home, port = Path(sys.argv[1]), srv.free_port()
# a server started WITHOUT the parent-death signal (as on a platform without prctl), recorded, then abandoned
proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                         str(port), "--no-ui"], env={**os.environ, "PREFECT_HOME": str(home)},
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
srv.write_record(home, srv.ServerRecord(proc.pid, srv.start_ticks(proc.pid), port, os.getpid(),
                                        srv.start_ticks(os.getpid()), "flow"))
"""


@pytest.mark.slow
def test_a_stale_server_whose_command_is_gone_is_killed_on_the_next_start(tmp_path):
    home = tmp_path / "prefect"
    (home / "pesflow-servers").mkdir(parents=True)
    env = prefect_env(tmp_path / "client", None)
    subprocess.run([sys.executable, "-c", ORPHAN, str(home)], env=env, check=True, timeout=60)
    [record] = srv.read_records(home)
    try:
        assert not srv.alive(record.parent, record.parent_ticks) and srv.alive(record.pid, record.ticks)
        wait_for(lambda: srv.healthy(record.api_url), 600, "the orphaned server to listen")
        done = srv.clean_stale(home)
        assert any(f"killed stale server {record.pid}" in line for line in done), done
        wait_for(lambda: _gone(record.pid) and _port_closed(record.port), 10, "the stale server to die")
        assert srv.read_records(home) == []
    finally:
        _kill_if_alive(record)


def _request(url: str, method: str = "GET", headers: dict | None = None, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json",
                                                                           **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


@flow(name="pesflow-server-probe", flow_run_name="probe-{x}", persist_result=False)
def probe(x: int) -> int:
    return x + 1


TERMINATED = """
import time
from prefect import flow
from flows.server import flow_server

@flow(name="pesflow-term-probe", flow_run_name="term-probe", persist_result=False)
def wait():
    print("running", flush=True)
    time.sleep(600)

with flow_server(announce=False):
    wait()
"""


def test_ui_is_hardened_serves_pesflow_runs_and_stops_on_sigterm(tmp_path, client_home, monkeypatch):
    port = free_port()
    env = prefect_env(client_home, None)
    home = Path(env["PESFLOW_HOME"]) / "prefect"
    api, own = f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{port}"
    log_path = tmp_path / "ui.log"
    record = None
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(BIN / "pesflow"), "ui", "--port", str(port)], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            record = _healthy_record(home, proc, log_path)
            assert (record.kind, record.port, record.parent) == ("ui", port, proc.pid)
            assert (home / "prefect.db").exists()  # its own Prefect home, not ~/.prefect

            # CORS: a foreign origin gets no allow-origin header (simple request and preflight); the UI's own does
            _, headers, _ = _request(f"{api}/health", headers={"Origin": "http://evil.example"})
            assert "access-control-allow-origin" not in headers
            status, headers, _ = _request(f"{api}/flows/filter", "OPTIONS", {
                "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
            assert status >= 400 and "access-control-allow-origin" not in headers
            _, headers, _ = _request(f"{api}/health", headers={"Origin": own})
            assert headers.get("access-control-allow-origin") == own

            # CSRF: a write without the token is refused, with the token it passes
            status, _, body = _request(f"{api}/flows/filter", "POST", body={})
            assert status == 403 and b"CSRF" in body
            _, _, token = _request(f"{api}/csrf-token?client=pesflow-test")
            token = json.loads(token)["token"]
            status, _, _ = _request(f"{api}/flows/filter", "POST", {"Prefect-Csrf-Token": token,
                                                                   "Prefect-Csrf-Client": "pesflow-test"}, {})
            assert status == 200

            # a pesflow command (here: flow_server in this process) reports to the running ui server
            monkeypatch.setenv("PESFLOW_HOME", env["PESFLOW_HOME"])
            monkeypatch.delenv("PREFECT_API_URL", raising=False)
            with srv.flow_server(announce=False) as url:
                assert url == api
                assert probe(2) == 3
            headers = {"Prefect-Csrf-Token": token, "Prefect-Csrf-Client": "pesflow-test"}
            _, _, runs = _request(f"{api}/flow_runs/filter", "POST", headers, {})
            assert "probe-2" in [r["name"] for r in json.loads(runs)]

            # kill -TERM of `pesflow ui` stops its server
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
            wait_for(lambda: _gone(record.pid) and _port_closed(port), 10, "the ui's server to stop")
            assert srv.read_records(home) == []
        finally:
            stop(proc)
            _kill_if_alive(record)


@pytest.mark.slow
def test_sigterm_of_a_flow_command_marks_its_run_crashed_and_exits_143(tmp_path):
    """SIGTERM (kill, timeout, a batch scheduler) ends a command as Ctrl-C does, not mid-air: the flow run is
    marked Crashed (it stayed Running forever before), the command exits with 143."""
    with prefect_server(tmp_path / "prefect") as (api, env):
        term = subprocess.Popen([sys.executable, "-c", TERMINATED], env=env, stdout=subprocess.PIPE, text=True)
        try:
            assert term.stdout.readline().strip() == "running"
            term.send_signal(signal.SIGTERM)
            assert term.wait(timeout=60) == 143
        finally:
            stop(term)

        def crashed():
            _, _, runs = _request(f"{api}/flow_runs/filter", "POST", body={})
            return [r["state_type"] for r in json.loads(runs) if r["name"] == "term-probe"] == ["CRASHED"]

        wait_for(crashed, 30, "the terminated flow run to be marked CRASHED")


# -- no server needed ---------------------------------------------------------------------------------------------
def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return " ".join(err.split())


def test_bad_server_settings_are_one_line_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PESFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PESFLOW_SERVER_START_TIMEOUT", "soon")
    msg = _error(capsys, [*MELT, "--out", str(tmp_path / "m")])
    assert "PESFLOW_SERVER_START_TIMEOUT='soon' is not a positive number" in msg and "unset it" in msg
    assert srv.read_records(tmp_path / "prefect") == []  # nothing was started

    monkeypatch.delenv("PESFLOW_SERVER_START_TIMEOUT")
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{free_port()}/api")  # nothing listens there
    monkeypatch.setattr(srv, "USER_SERVER_WAIT_S", 1.0)
    msg = _error(capsys, [*MELT, "--out", str(tmp_path / "m")])
    assert "does not answer" in msg and "unset PREFECT_API_URL" in msg

    assert "--port must be in 1..65535, got 70000" in _error(capsys, ["ui", "--port", "70000"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert f"port {port} on 127.0.0.1 is in use" in _error(capsys, ["ui", "--port", str(port)])


def test_every_command_gets_the_environment_defaults(tmp_path, monkeypatch, capsys):
    """Telemetry off and a generous start timeout for any command (before, only `run` set them)."""
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "x")
    monkeypatch.delenv("PREFECT_SERVER_ANALYTICS_ENABLED")
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "77")  # the user's own value wins
    assert main(["plot", str(tmp_path)]) == 2  # not a campaign directory: an error, but the defaults are set
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] == "77"


def test_flow_server_uses_the_users_server_as_is(tmp_path, monkeypatch):
    """With PREFECT_API_URL set (and answering), nothing is started and nothing is recorded."""
    with socket.socket() as s:  # any HTTP answer counts (an authenticated server answers 401)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("PESFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{port}/api/")
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: not _port_closed(port), 30, "a plain HTTP server")
        with srv.flow_server(announce=False) as url:
            assert url == f"http://127.0.0.1:{port}/api"
        assert not (tmp_path / "prefect").exists()
    finally:
        stop(server)


@pytest.mark.parametrize(("name", "values", "expected"), [
    ("melting_curve", {"element": "Ar", "pressure": 1.0, "n_cells": 4}, "melt-Ar-P1-4cells-rng0"),
    ("coexistence", {"element": "LJ", "pressure": 0.5, "seed": 3}, "coexist-LJ-P0.5-rng3"),
    ("seeded_crystallisation", {"element": "Kr", "pressure": 250.0, "n_cells": 6}, "seed-Kr-P250-6cells-rng0"),
])
def test_phase_flow_runs_are_named(name, values, expected):
    """The run name Prefect shows: the flow's template filled with the call's parameters (defaults included),
    whether the flow takes the values as parameters or one validated ``settings`` model."""
    import typing

    from prefect.utilities.callables import get_call_parameters

    import flows.phase

    f = getattr(flows.phase, name)
    if "settings" in inspect.signature(f.fn).parameters:
        values = {"settings": typing.get_type_hints(f.fn)["settings"](**values)}
    assert f.flow_run_name.format(**get_call_parameters(f.fn, (), values)) == expected


WORKERS = """
import multiprocessing, os, time
from concurrent.futures import ProcessPoolExecutor
from flows.reaper import watch_this_process

if __name__ == "__main__":
    watch_this_process()
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        print(*sorted({f.result() for f in [pool.submit(os.getpid) for _ in range(8)]}), flush=True)
        time.sleep(600)
"""


def test_kill9_takes_spawned_worker_processes_down(tmp_path):
    """Spawned ProcessPoolExecutor workers (as the PySCF labels use) otherwise outlive a `kill -9` of their
    parent indefinitely (idle, reparented to init); the watchdog of flows.reaper ends them."""
    script = tmp_path / "workers.py"
    script.write_text(WORKERS)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    workers = []
    try:
        workers = [int(p) for p in proc.stdout.readline().split()]
        assert workers and all(not _gone(p) for p in workers)
        time.sleep(2 * reaper.POLL_S)  # the watchdog has seen them
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        wait_for(lambda: all(_gone(p) for p in workers), 10, f"workers {workers} to die with their parent")
    finally:
        stop(proc)
        for pid in workers:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
