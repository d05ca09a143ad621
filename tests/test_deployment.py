"""Deployments against a real local Prefect server started here (127.0.0.1, free port, own PREFECT_HOME):
`pesflow deploy` registers them on a process work pool, the recurring one carries its cron schedule in an
explicit time zone (the machine's by default, ``--timezone`` otherwise; Prefect takes a zone-less cron as
UTC), and a flow run triggered from it is picked up by a process worker and completes (a real, tiny campaign).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from prefect_server import BIN, prefect_server, stop, wait_for
from test_campaign import TINY

REGISTER = Path(__file__).resolve().parents[1] / "deployments" / "register.py"


def _register_module():
    spec = importlib.util.spec_from_file_location("pesflow_deployments_test", REGISTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_schedule_timezone_default_is_the_machine_zone_and_names_are_checked():
    register = _register_module()
    assert register.schedule_timezone("Europe/Berlin") == ("Europe/Berlin", "given with --timezone")
    for bad in ("Mars/Olympus", "", "/etc/localtime", "../../etc/passwd"):
        try:
            register.check_timezone(bad)
        except register.TimezoneError as exc:
            assert f"unknown time zone {bad!r}: give an IANA name such as 'Europe/Berlin'" in str(exc)
        else:
            raise AssertionError(f"{bad!r} was accepted")
    # the default follows the machine's zone (TZ is one of the places tzlocal reads it from)
    code = (f"import importlib.util as u; s = u.spec_from_file_location('r', {str(REGISTER)!r}); "
            "m = u.module_from_spec(s); s.loader.exec_module(m); print(m.local_timezone()[0])")
    for zone in ("America/New_York", "Asia/Kolkata"):
        out = subprocess.run([sys.executable, "-c", code], env={"TZ": zone, "PATH": "/usr/bin:/bin"},
                             capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() == zone, out.stderr


def test_deploy_refuses_an_unknown_timezone_before_contacting_a_server(capsys, monkeypatch):
    from flows.cli import main

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert main(["deploy", "--timezone", "Mars/Olympus"]) == 2
    err = capsys.readouterr()
    text = err.out + err.err
    assert "--timezone: unknown time zone 'Mars/Olympus'" in text and "Traceback" not in text


def test_cron_deployment_runs_on_a_process_worker(tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY.format(name="deployed", iterations=0, executor="default", workers=1))
    directory = tmp_path / "campaign"
    with prefect_server(tmp_path / "prefect") as (url, env):
        deploy = [str(BIN / "pesflow"), "deploy", "--pool", "test-pool", "--cron", "30 3 * * *",
                  "--config", str(cfg), "--dir", str(directory)]
        # no --timezone: the machine's zone (here set through TZ), stated in the output
        reg = subprocess.run(deploy, env={**env, "TZ": "America/New_York"}, capture_output=True, text=True,
                             timeout=300)
        assert reg.returncode == 0, reg.stdout + reg.stderr
        said = " ".join((reg.stdout + reg.stderr).split())  # the console wraps long lines
        assert "deployment nightly-continuation" in said
        assert "cron '30 3 * * *' in time zone America/New_York (the machine's local zone)" in said
        with temporary_settings({PREFECT_API_URL: url}):
            with get_client(sync_client=True) as client:
                dep = client.read_deployment_by_name("active-learning/nightly-continuation")
                assert dep.work_pool_name == "test-pool"
                assert [(s.schedule.cron, s.schedule.timezone) for s in dep.schedules] == [
                    ("30 3 * * *", "America/New_York")]
                assert dep.parameters["directory"] == str(directory)
                pool = client.read_work_pool("test-pool")
                assert pool.type == "process"
        reg = subprocess.run(deploy + ["--timezone", "Europe/Berlin"], env=env, capture_output=True, text=True,
                             timeout=300)
        assert reg.returncode == 0, reg.stdout + reg.stderr
        assert "in time zone Europe/Berlin (given with --timezone)" in " ".join((reg.stdout + reg.stderr).split())
        with temporary_settings({PREFECT_API_URL: url}):
            with get_client(sync_client=True) as client:
                dep = client.read_deployment_by_name("active-learning/nightly-continuation")
                assert [(s.schedule.cron, s.schedule.timezone) for s in dep.schedules] == [
                    ("30 3 * * *", "Europe/Berlin")]
            # trigger the recurring deployment now, with no extra label round (labels + one fit: quick)
            run = run_deployment("active-learning/nightly-continuation", parameters={"more_iterations": 0},
                                 timeout=0)
            log = open(tmp_path / "worker.log", "w")  # noqa: SIM115
            worker = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "test-pool"],
                                      env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                def finished():
                    with get_client(sync_client=True) as client:
                        state = client.read_flow_run(run.id).state
                    return state if state is not None and state.is_final() else None

                state = wait_for(finished, 600, "the triggered flow run to finish", every=2.0)
            finally:
                stop(worker)
                log.close()
        assert state.is_completed(), (tmp_path / "worker.log").read_text()[-4000:]
    assert (directory / "DONE.json").exists() and (directory / "final.mtp").exists()
