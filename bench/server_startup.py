"""Start-up cost of pesflow's own Prefect server (``flows.server.flow_server``) against Prefect's temporary
("ephemeral") server: wall time of a fresh process that imports Prefect and runs one trivial flow, both modes
interleaved, each after a warm-up run that creates its database (a user's later commands find it). The
machine's load average is recorded, since on a shared 2-core machine it dominates the figures.

    python bench/server_startup.py --repeats 5 --json bench/out/server_startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FLOW = """
from prefect import flow

@flow(name="startup-probe")
def probe():
    return 1
"""
MODES = {
    "ephemeral": FLOW + "probe()\n",
    "pesflow-server": FLOW + "from flows.server import flow_server\nwith flow_server(announce=False):\n    probe()\n",
}


def run_once(mode: str, home: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PESFLOW_"))}
    env.update({"PREFECT_HOME": str(home / mode / "client"), "PESFLOW_HOME": str(home / mode),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING",
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "600"})
    if mode == "ephemeral":
        env["PREFECT_HOME"] = str(home / mode)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", MODES[mode]], env=env, cwd=ROOT, check=True, capture_output=True,
                   timeout=900)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    out: dict = {"load_before": os.getloadavg(), "warmup_s": {}, "runs_s": {m: [] for m in MODES}}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        for mode in MODES:
            out["warmup_s"][mode] = run_once(mode, home)
        for _ in range(args.repeats):
            for mode in MODES:
                out["runs_s"][mode].append(run_once(mode, home))
    out["load_after"] = os.getloadavg()
    out["median_s"] = {m: statistics.median(v) for m, v in out["runs_s"].items()}
    for mode, runs in out["runs_s"].items():
        print(f"{mode:15s} warm-up {out['warmup_s'][mode]:6.1f} s; runs {' '.join(f'{r:.1f}' for r in runs)} s; "
              f"median {out['median_s'][mode]:.1f} s")
    print(f"load average before {out['load_before'][0]:.1f}, after {out['load_after'][0]:.1f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
