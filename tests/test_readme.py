"""The README's snippets run as written (issue 23 §4): every fenced ```python block is executed (in a folder
holding the small files it names, made by a real tiny campaign), and every ```bash line that calls
``.venv/bin/pesflow`` is parsed by the real command line (options, types and choices checked, nothing run);
every ``bench/…`` script a line names exists."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(README.read_text()) if lang == language]


def shell_commands() -> list[str]:
    """The bash blocks' commands, continuation lines joined, comments dropped."""
    commands = []
    for body in blocks("bash"):
        for line in body.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


PESFLOW = [c for c in shell_commands() if c.startswith(".venv/bin/pesflow")]


def test_readme_has_snippets():
    assert len(blocks("python")) >= 1 and len(PESFLOW) >= 10


@pytest.mark.parametrize("command", PESFLOW)
def test_pesflow_line_parses(command):
    from flows.cli import app

    group = typer.main.get_command(app)
    name, *rest = shlex.split(command)[1:]
    parent = group.context_class(group, info_name="pesflow")
    cmd = group.get_command(parent, name)
    assert cmd is not None, f"README names an unknown command: {command}"
    try:
        cmd.make_context(name, rest, parent=parent)  # parses and converts every option; runs nothing
    except Exception as exc:  # typer's (vendored) click UsageError / BadParameter
        pytest.fail(f"README line does not parse: {command}\n{getattr(exc, 'format_message', exc.__str__)()}")


def test_bench_scripts_exist():
    scripts = [w for c in shell_commands() for w in shlex.split(c) if w.startswith("bench/") and w.endswith(".py")]
    assert scripts
    for script in scripts:
        assert (ROOT / script).is_file(), script


def test_python_blocks_run(tmp_path_factory):
    from tiny_campaign import tiny_campaign

    campaign = tiny_campaign(tmp_path_factory)
    work = tmp_path_factory.mktemp("readme")
    (work / "runs" / "water-hf").mkdir(parents=True)
    shutil.copy(campaign / "final.mtp", work / "runs" / "water-hf" / "final.mtp")  # what `pesflow run` writes
    for i, code in enumerate(blocks("python")):
        run = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, timeout=300,
                             env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(work)})
        assert run.returncode == 0, f"README python block {i} failed:\n{code}\n{run.stderr[-2000:]}"
        assert " eV" in run.stdout and "e-" not in run.stdout
