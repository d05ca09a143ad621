"""Deployments against a real local Prefect server started here (127.0.0.1, free port, own PREFECT_HOME):
`pesflow deploy` registers them on a process work pool, the recurring one carries its cron schedule, and a
flow run triggered from it is picked up by a process worker and completes (a real, tiny campaign)."""

from __future__ import annotations

import subprocess

from prefect_server import BIN, prefect_server, stop, wait_for
from test_campaign import TINY


def test_cron_deployment_runs_on_a_process_worker(tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY.format(name="deployed", iterations=0, executor="default", workers=1))
    directory = tmp_path / "campaign"
    with prefect_server(tmp_path / "prefect") as (url, env):
        reg = subprocess.run([str(BIN / "pesflow"), "deploy", "--pool", "test-pool", "--cron", "30 3 * * *",
                              "--config", str(cfg), "--dir", str(directory)],
                             env=env, capture_output=True, text=True, timeout=300)
        assert reg.returncode == 0, reg.stdout + reg.stderr
        assert "nightly-continuation" in reg.stdout
        with temporary_settings({PREFECT_API_URL: url}):
            with get_client(sync_client=True) as client:
                dep = client.read_deployment_by_name("active-learning/nightly-continuation")
                assert dep.work_pool_name == "test-pool"
                assert [s.schedule.cron for s in dep.schedules] == ["30 3 * * *"]
                assert dep.parameters["directory"] == str(directory)
                pool = client.read_work_pool("test-pool")
                assert pool.type == "process"
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
