#!/usr/bin/env bash
# Stop the private SLURM started by tests/slurm/start.sh in STATE_DIR: cancel its jobs, then stop exactly the
# slurmd, slurmctld and munged whose pid files are in STATE_DIR (each checked to be that daemon running with that
# directory's files before it is signalled; never a search by name). The state directory is kept (logs) unless
# --remove is given.
#
#   tests/slurm/stop.sh STATE_DIR [--remove]
set -uo pipefail
PATH="$PATH:/usr/sbin:/sbin"
D="${1:?usage: stop.sh STATE_DIR [--remove]}"
D="$(cd "$D" && pwd)" || exit 1
export SLURM_CONF="$D/slurm.conf"

# cancel every job of this private cluster, and wait until they are gone (their processes belong to slurmd)
if [[ -f "$D/slurmctld.pid" ]]; then
    jobs="$(timeout 15 squeue -h -o %i 2>/dev/null || true)"
    if [[ -n "$jobs" ]]; then
        # shellcheck disable=SC2086
        timeout 15 scancel $jobs 2>/dev/null || true
        for _ in $(seq 1 40); do
            [[ -z "$(timeout 15 squeue -h -o %i -t RUNNING,COMPLETING,CONFIGURING 2>/dev/null)" ]] && break
            sleep 0.5
        done
    fi
fi

# stop_daemon PIDFILE BINARY: signal the pid only if it is BINARY and its command line names this directory
# (munged: its --socket; slurmctld/slurmd: -f slurm.conf)
stop_daemon() {
    local pidfile="$1" binary="$2" pid cmd
    [[ -f "$pidfile" ]] || return 0
    pid="$(tr -dc 0-9 <"$pidfile")"
    [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || { rm -f "$pidfile"; return 0; }
    cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline")"
    if [[ "$cmd" != *"$binary"* || "$cmd" != *"$D"* ]]; then
        echo "stop.sh: pid $pid in $pidfile is not our $binary ($cmd); left alone" >&2
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
        sleep 0.25
    done
    kill -KILL "$pid" 2>/dev/null
    rm -f "$pidfile"
}
stop_daemon "$D/slurmd.pid" slurmd
stop_daemon "$D/slurmctld.pid" slurmctld
stop_daemon "$D/munge/munged.pid" munged
if [[ "${2:-}" == "--remove" ]]; then
    rm -rf "$D"
fi
exit 0
