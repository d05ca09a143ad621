"""Test helper: a real local Prefect server on a free 127.0.0.1 port with its own PREFECT_HOME, and process
handling with deadlines (every process started is stopped: SIGINT, then SIGKILL after a deadline)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from flows.server import die_with_parent

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prefect_env(home: Path, api_url: str | None) -> dict:
    """Environment for child processes: own PREFECT_HOME and PESFLOW_HOME (pesflow's own servers keep their
    database below it, never in ~/.pesflow), no telemetry, the server's URL (or none)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"PREFECT_HOME": str(home), "PESFLOW_HOME": str(home / "pesflow"),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180", "OMP_NUM_THREADS": "1",
                "PREFECT_LOGGING_LEVEL": "INFO"})
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def stop(proc: subprocess.Popen, deadline_s: float = 20.0) -> None:
    """Stop a process we started: SIGINT (a Prefect worker may ignore SIGTERM), SIGKILL after the deadline."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=deadline_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def wait_for(predicate, deadline_s: float, what: str, every: float = 0.5):
    """Poll ``predicate()`` until it returns a true value; AssertionError naming ``what`` after the deadline."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {deadline_s:.0f} s waiting for {what}")


@contextlib.contextmanager
def prefect_server(home: Path, startup_deadline_s: float = 180.0) -> Iterator[tuple[str, dict]]:
    """Start ``prefect server start`` on 127.0.0.1:<free port>; yields (API URL, env for clients)."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = prefect_env(home, None)
    log = open(home / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=die_with_parent())  # gone with pytest, even if a CI job is killed

    def healthy():
        if proc.poll() is not None:
            raise AssertionError(f"prefect server exited: {(home / 'server.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        wait_for(healthy, startup_deadline_s, "the Prefect server to answer /api/health")
        yield url, prefect_env(home, url)
    finally:
        stop(proc)
        log.close()
