"""The layer rule, checked on the source: imports point one way, ``flows → tasks → hmc_core``.

* ``hmc_core`` (numerics) never imports prefect, pyscf, typer, rich, ``tasks`` or ``flows`` — a
  Lennard-Jones user must not pull in the workflow engine, the quantum chemistry code or the CLI; it may
  import numpy, numba, scipy, scikit-learn, xarray and ASE (structures, file formats, calculators).
* ``tasks`` (pipeline stages) never imports ``flows``.

Every ``import``/``from … import`` statement is read with :mod:`ast`, including those inside functions
(a lazy import still couples the layers); ``if TYPE_CHECKING:`` blocks are exempt.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "hmc_core": {"prefect", "pyscf", "typer", "rich", "tasks", "flows"},
    "tasks": {"flows"},
}


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, top-level module) of every absolute import in ``tree`` outside ``if TYPE_CHECKING:`` blocks."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module.split(".")[0]))
    return out


def violations(package: str) -> list[str]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {ROOT / package}"
    return [f"{path.relative_to(ROOT)}:{line} imports {module}"
            for path in files
            for line, module in imported_modules(ast.parse(path.read_text(), filename=str(path)))
            if module in FORBIDDEN[package]]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_down_only(package):
    found = violations(package)
    assert not found, (f"{package}/ must not import {', '.join(sorted(FORBIDDEN[package]))}; move the code up a "
                       "layer or pass the dependency in:\n  " + "\n  ".join(found))


def test_the_check_sees_lazy_and_dotted_imports():
    """The parser catches what the rule forbids (a test of the test): function-level and dotted imports."""
    source = "def f():\n    import prefect.tasks\n    from flows.cli import app\nfrom tasks import label\n"
    assert [m for _, m in imported_modules(ast.parse(source))] == ["tasks", "prefect", "flows"]
    guarded = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from flows import x\n"
    assert [m for _, m in imported_modules(ast.parse(guarded))] == ["typing"]
