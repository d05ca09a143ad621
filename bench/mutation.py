"""Mutation testing (issue 14 §2): mutmut 3 over the core modules, one module at a time, each with a fast
targeted test selection; writes killed / survived / timeout / score per module to ``bench/out/mutation.json``
with every surviving mutant (file:line and diff).

    make mutation                                   # every module below, 1 worker
    python bench/mutation.py --modules tasks/select.py flows/store.py --workers 2
    python bench/mutation.py --modules tasks/select.py --resume --rerun-survivors   # after adding a test

Each module runs in its own scratch copy ``.mutation/<module>/`` (a snapshot of hmc_core/, tasks/, flows/,
tests/ and pyproject.toml, plus a ``setup.cfg`` holding that module's ``[mutmut]`` settings); mutmut writes
its ``mutants/`` tree there. Nothing in the working tree is modified. ``--resume`` keeps a module's scratch
copy (mutmut then re-tests only functions whose code changed); ``--rerun-survivors`` re-tests the
survivors recorded there (say after adding a test; the tests are re-copied first).

Score = (killed + timeout) / (all tested mutants), where a mutant no selected test reaches ("no tests")
counts as a survivor. Mutants judged equivalent (no behaviour change possible) are listed in
``EQUIVALENT`` with the reason; they are reported but still count as survivors in ``score``;
``score_excluding_equivalent`` leaves them out; ``meets_bar`` is ``score_excluding_equivalent`` ≥ 0.85 over a
complete run (a run cut short leaves mutants "not checked": ``complete`` is false). The exit status is 1 when a
module misses the bar. Not part of CI: it takes tens of minutes per module.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = ROOT / ".mutation"
SHARED_DATA = Path(os.environ.get("PESFLOW_SHARED_DATA", ROOT.parent / "shared" / "data"))
SOURCE_PACKAGES = ("hmc_core", "tasks", "flows")

# module (file or package folder) -> the tests that exercise it quickly.
MODULES: dict[str, list[str]] = {
    "tasks/select.py": ["tests/test_select.py", "tests/test_campaign_core.py", "tests/test_mutation_select.py"],
    "flows/store.py": ["tests/test_store.py", "tests/test_mutation_store.py"],
    "tasks/fit.py": ["tests/test_mtp_fit.py", "tests/test_mutation_fit.py"],
    "tasks/label.py": ["tests/test_label.py", "tests/test_label_cache.py", "tests/test_mutation_label.py"],
    "hmc_core/hmc.py": ["tests/test_hmc.py", "tests/test_mutation_hmc.py"],
    "hmc_core/uncertainty/": ["tests/test_uncertainty.py", "tests/test_select.py",
                              "tests/test_mutation_uncertainty.py"],
    "flows/active_learning.py": ["tests/test_campaign_core.py", "tests/test_campaign.py",
                                 "tests/test_mutation_active_learning.py", "tests/test_campaign_wiring.py",
                                 "tests/test_cluster_campaign.py"],
}
# extra pytest arguments of a module's selection (only in the stats run, which decides the tests of each mutant):
# the label tests that start worker processes (spawn + PySCF import, ~10 s each) are left out, so mutants only
# they reach count as "no tests" (survivors) rather than making every label mutant cost minutes.
SELECTION_ARGS: dict[str, list[str]] = {
    # the statistical exactness test (2 × 4000 trajectories, minutes under mutmut's tracing) is left out
    "hmc_core/hmc.py": ["-k", "not harmonic_wells_sample_exact_distribution"],
    # and so are the slow numerical checks (finite-difference forces, periodic, MP2, warm-start cycles; 7-13 s each)
    "tasks/label.py": ["-k", "not parallel and not worker_count and not killed_worker and not finite_differences "
                       "and not warm_start_same_energy and not periodic_gamma and not mp2"],
    # the end-to-end campaign through the CLI (a server start per run) is too slow to repeat per mutant; the
    # Campaign wiring is tested in-process by tests/test_campaign_wiring.py against one server (NEEDS_SERVER)
    "flows/active_learning.py": ["--deselect", "tests/test_campaign.py"],
}
BAR = 0.85
# modules whose tests run flows in-process: one Prefect server is started for the whole mutmut run (a temporary
# server per mutant would cost ~15 s each) and named to the tests by PESFLOW_TEST_PREFECT_API_URL; repeated
# PySCF labels are answered by one label cache (PESFLOW_TEST_LABEL_CACHE) shared by all mutants, and a reference
# campaign made once by the unmutated code (PESFLOW_TEST_REFERENCE_CAMPAIGN, tests/test_campaign_wiring.py
# make_reference) lets one stage's wiring be re-run alone against it
NEEDS_SERVER = {"flows/active_learning.py"}
_MAKE_REFERENCE = ("import sys; sys.path[:0] = ['tests', '.']; from test_campaign_wiring import make_reference; "
                   "make_reference(sys.argv[1], sys.argv[2])")

# Surviving mutants judged equivalent: mutmut name -> why no test can tell them from the original.
_RANK_DTYPE = ("rank_of only orders rows and is converted to int64 by ActiveSet.select (_group_index); its values "
               "are exact small integers, so a float64 array gives the same selection")
_ROW_ORDER = ("argsort over configuration ranks: only the order of the rows *within* one configuration can change "
              "(quicksort is not stable); greedy MaxVol takes the first of exactly equal |c| values, so the result "
              "differs only for bit-identical rows of one configuration, which then give the same choice")
_USED = ("indices=None makes TrainingData / error_report use usable_configurations(labels), which is exactly `used`")
_ZIP = "zip(used, n): n = n_atoms[used] always has len(used) entries, so strict= never matters"
_DEAD_COV = ("greedy_select updates a local `cov` in its loop that is never read afterwards (dead code; the "
             "choice uses sx_all and var): any change to that line is invisible")
_EINSUM = "einsum with consistently upper-cased subscripts is the same contraction"
_CAP = ("a safety cap on MaxVol swaps (≈10·(m + n)); MaxVol converges in far fewer swaps, so ±1 or 11· never binds")
_BUFFER = "a scratch-buffer size (max(·, 2) instead of max(·, 1)); only the first k entries are ever read"
_RESHAPE = "numpy ≥ 2 takes any negative size in reshape as the one unknown dimension: reshape(-2) is reshape(-1)"
_NONE_BOOL = "numpy stores None in a bool array as False"
_SQUARE = ("shape[1] instead of shape[0]: equal for a square basis, and a non-square one fails the square check "
           "either way")
_NO_DRAW = ("without jitter rng.integers(n, n + 1) returns n without drawing from the stream, so `>= 0` gives the "
            "same steps and the same random numbers")
_INIT_FLOAT = "HMCSampler.init converts the start positions to float64 again"
_THREADS = ("chains in threads or in a loop give bit-identical results (independent spawned seeds; "
            "tests/test_hmc.py checks it), so n_workers and the threading condition cannot be observed")
_SKIN = ("the neighbour-list skin only sets how often the list is rebuilt; energies and forces are the same (up to "
         "summation order; the harmonic wells of the tests use no list)")
_ERRSTATE = "np.errstate(all=None) leaves the default ('warn'): only whether overflow warnings are printed changes"
_UNIFORM_TIE = "`u <= p` instead of `u < p` differs only when the uniform draw equals accept_prob exactly"
_PERSIST0 = "with persistence a = 0 the partial refresh a·p + √(1 − a²)·ξ is ξ: both branches give the same momenta"
_REC_NAN = "the per-sample arrays start as NaN and the loop breaks, so entries after the stop are NaN already"
_INV_MASS = "1.0 / m is float64 whatever the dtype of the masses"
_TEMPS = "temps are Python floats already (float(t) in run_chains)"
_STABLE = "numpy reads sort kinds case-insensitively: 'STABLE' is 'stable'"
_ONE_PART = ("concatenating a single dataset gives the same rows; only its object-text variables come back as numpy "
             "unicode, which netCDF (labels.nc) stores identically")
_TEXT_COLUMN = ("a text metric column as numpy unicode instead of object: metrics.nc holds the same strings and reads "
                "back the same")
_OMP_TWICE = ("the in-process labels run inside threadpool_limits(limits=threads), which sets and restores the "
              "OpenMP runtime PySCF uses (threadpoolctl controls every loaded OpenMP library); the pyscf "
              "set_threads call around it sets and restores the same count again")
_PARITY = "(n + s) % 2 and (n - s) % 2 are the same parity for integers n, s"
_DET_EXP = ("np.linalg.det returns sign·exp(Σ log|u_ii|) of the LU factors; no double near log(1e-6) maps to exactly "
            "1e-6 (the neighbours are 9.999999999999987e-07 and 1.0000000000000004e-06), so `<=` and `<` agree")
EQUIVALENT: dict[str, str] = {
    "tasks.select.x_select_candidates__mutmut_72": _RANK_DTYPE,
    "tasks.select.x_select_candidates__mutmut_74": _RANK_DTYPE,
    "tasks.select.x_select_candidates__mutmut_79": _ROW_ORDER,
    "tasks.select.x_select_candidates__mutmut_81": _ROW_ORDER,
    "tasks.select.x_select_candidates__mutmut_83": _STABLE,
    "tasks.select.x_select_candidates__mutmut_46": _NONE_BOOL,
    "tasks.select.x_select_candidates__mutmut_270": "float('NAN') is float('nan')",
    "tasks.select.x_select_candidates__mutmut_196": "1e+300 and 1e300 are the same float literal",
    "tasks.select.x_run_select__mutmut_4": ("SeedSequence.generate_state(2)[0] == generate_state(1)[0] (the words are "
                                           "a prefix of one stream)"),
    "flows.store.x__aligned__mutmut_45": ("dtype.kind is one character and 'X' is no numpy kind: `in 'XXiufXX'` is "
                                         "`in 'iuf'`"),
    "flows.store.xǁCampaignStoreǁadd_labels__mutmut_46": _ONE_PART,
    "flows.store.xǁCampaignStoreǁadd_labels__mutmut_49": _ONE_PART,
    "flows.store.xǁCampaignStoreǁadd_labels__mutmut_60": _STABLE,
    "flows.store.xǁCampaignStoreǁrecord_metrics__mutmut_27": _TEXT_COLUMN,
    "flows.store.xǁCampaignStoreǁrecord_metrics__mutmut_29": _TEXT_COLUMN,
    "flows.store.xǁCampaignStoreǁrecord_metrics__mutmut_41": ("np.array([None, 1.0], dtype=float) already stores "
                                                             "None as NaN"),
    "tasks.fit.x_fit_potential__mutmut_80": _USED,
    "tasks.fit.x_fit_potential__mutmut_83": _USED,
    "tasks.fit.x_fit_potential__mutmut_146": _USED,
    "tasks.fit.x_fit_potential__mutmut_149": _USED,
    "tasks.fit.x_fit_potential__mutmut_23": _ZIP,
    "tasks.fit.x_fit_potential__mutmut_26": _ZIP,
    "tasks.fit.x_fit_potential__mutmut_27": _ZIP,
    "tasks.fit.x_run_fit__mutmut_34": "build_active_set's default mode is 'atom'",
    "tasks.fit.x_run_fit__mutmut_4": ("SeedSequence.generate_state(2)[0] == generate_state(1)[0] (the words are a "
                                     "prefix of one stream)"),
    "hmc_core.uncertainty.bayes.xǁBayesianLinearModelǁgreedy_select__mutmut_88": _DEAD_COV,
    "hmc_core.uncertainty.bayes.xǁBayesianLinearModelǁgreedy_select__mutmut_89": _DEAD_COV,
    "hmc_core.uncertainty.bayes.xǁBayesianLinearModelǁgreedy_select__mutmut_90": _DEAD_COV,
    "hmc_core.uncertainty.bayes.xǁBayesianLinearModelǁgreedy_select__mutmut_69": _NONE_BOOL,
    "hmc_core.uncertainty.bayes.xǁBayesianLinearModelǁgreedy_select__mutmut_40": _EINSUM,
    "hmc_core.uncertainty.bayes.xǁBayesianLinearModelǁepistemic_std__mutmut_17": _EINSUM,
    "hmc_core.uncertainty.grade.x_grade_monitor__mutmut_62": "float('INF') is float('inf')",
    "hmc_core.uncertainty.maxvol.xǁActiveSetǁ__post_init____mutmut_4": _SQUARE,
    "hmc_core.uncertainty.maxvol.xǁActiveSetǁselect__mutmut_29": _CAP,
    "hmc_core.uncertainty.maxvol.xǁActiveSetǁselect__mutmut_31": _CAP,
    "hmc_core.uncertainty.maxvol.xǁActiveSetǁselect__mutmut_33": _CAP,
    "hmc_core.uncertainty.maxvol.xǁActiveSetǁupdate__mutmut_18": _CAP,
    "hmc_core.uncertainty.maxvol.xǁActiveSetǁselect__mutmut_43": _BUFFER,
    "hmc_core.uncertainty.maxvol.xǁActiveSetǁselect__mutmut_50": _BUFFER,
    "hmc_core.uncertainty.maxvol.xǁActiveSetǁupdate__mutmut_31": _BUFFER,
    "hmc_core.uncertainty.maxvol.xǁActiveSetǁupdate__mutmut_41": _BUFFER,
    "hmc_core.uncertainty.bayes.xǁBayesianLinearModelǁfit__mutmut_10": _RESHAPE,
    "hmc_core.uncertainty.committee.xǁCommitteeǁfit__mutmut_16": _RESHAPE,
    "hmc_core.uncertainty.committee.xǁCommitteeǁfit__mutmut_21": _RESHAPE,
    "hmc_core.uncertainty.grade.x_grade_monitor__mutmut_10": _RESHAPE,
    "hmc_core.uncertainty.grade.x_update_active_set__mutmut_16": _RESHAPE,
    "hmc_core.uncertainty.maxvol.x__group_index__mutmut_8": _RESHAPE,
    "hmc_core.uncertainty.maxvol.x__ids__mutmut_8": _RESHAPE,
    "hmc_core.hmc.x_run_chains__mutmut_2": _THREADS,
    "hmc_core.hmc.x_run_chains__mutmut_88": _THREADS,
    "hmc_core.hmc.x_run_chains__mutmut_89": _THREADS,
    "hmc_core.hmc.x_run_chains__mutmut_90": _THREADS,
    "hmc_core.hmc.x_run_chains__mutmut_91": _THREADS,
    "hmc_core.hmc.x_run_chains__mutmut_92": _THREADS,
    "hmc_core.hmc.x_run_chains__mutmut_93": _THREADS,
    "hmc_core.hmc.x_run_chains__mutmut_64": _SKIN,
    "hmc_core.hmc.x_run_chains__mutmut_5": _INIT_FLOAT,
    "hmc_core.hmc.x_run_chains__mutmut_7": _INIT_FLOAT,
    "hmc_core.hmc.xǁHMCSamplerǁstep__mutmut_5": _NO_DRAW,
    "hmc_core.hmc.xǁHMCSamplerǁstep__mutmut_104": "float('INF') is float('inf')",
    "hmc_core.hmc.xǁHMCSamplerǁstep__mutmut_58": _ERRSTATE,
    "hmc_core.hmc.xǁHMCSamplerǁstep__mutmut_107": _UNIFORM_TIE,
    "hmc_core.hmc.xǁHMCSamplerǁstep__mutmut_45": "rng.uniform(-1.0) has the default high=1.0: the same draw",
    "hmc_core.hmc.xǁHMCSamplerǁrefresh_momenta__mutmut_8": _PERSIST0,
    "hmc_core.hmc.x_run_chain__mutmut_97": _REC_NAN,
    "hmc_core.hmc.x_run_chain__mutmut_98": _REC_NAN,
    "hmc_core.hmc.x_run_chain__mutmut_99": _REC_NAN,
    "hmc_core.hmc.x_expand_inverse_mass__mutmut_3": _INV_MASS,
    "hmc_core.hmc.x_expand_inverse_mass__mutmut_5": _INV_MASS,
    "hmc_core.hmc.x_chains_to_dataset__mutmut_144": _TEMPS,
    "hmc_core.hmc.x_chains_to_dataset__mutmut_146": _TEMPS,
    "flows.store.xǁCampaignStoreǁ__init____mutmut_3": "CampaignStore._lock_fh is never read ('' vs None)",
    "flows.active_learning.xǁCampaignǁrun__mutmut_35": ("artifact_key lower-cases its parts (Prefect keys allow "
                                                       "lowercase letters only): 'PROGRESS' is the key 'progress'"),
    "flows.store.x__aligned__mutmut_3": ("dtype.kind is one character and 'X' is no numpy kind: `in 'XXOSUXX'` is "
                                        "`in 'OSU'`"),
    "flows.store.x__aligned__mutmut_31": ("dtype.kind is one character and 'X' is no numpy kind: `in 'XXiuXX'` is "
                                         "`in 'iu'`"),
    "tasks.label.x_check_batch__mutmut_61": _DET_EXP,
    "tasks.label.x_check_batch__mutmut_92": _PARITY,
    "tasks.label.x_check_batch__mutmut_109": _PARITY,
    "tasks.label.x_check_batch__mutmut_116": ("check_elements only tests `periodic` for truth: periodic=None is "
                                              "periodic=False"),
    "tasks.label.x_label_configurations__mutmut_135": _OMP_TWICE,
    "tasks.label.x_label_configurations__mutmut_136": _OMP_TWICE,
    "tasks.label.x_label_configurations__mutmut_88": ("in a daemonic process `n_workers >= 1` also resets "
                                                      "n_workers = 1 to 1: the same count"),
}

STATUS_BY_EXIT_CODE = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
                       35: "suspicious", 36: "timeout", 37: "caught by type check", -24: "timeout", 24: "timeout",
                       152: "timeout", 255: "timeout", -11: "segfault", -9: "segfault", None: "not checked"}


def mutmut_executable() -> str:
    """The mutmut command beside this Python; a loud failure when it is not installed."""
    exe = Path(sys.executable).parent / "mutmut"
    if exe.exists():
        return str(exe)
    found = shutil.which("mutmut")
    if found:
        return found
    sys.exit("bench/mutation.py: mutmut is not installed. Install it with "
             "`.venv/bin/pip install -e '.[mutation]'` (or `.venv/bin/pip install 'mutmut>=3.8'`).")


def slug(module: str) -> str:
    return module.rstrip("/").removesuffix(".py").replace("/", ".")


def only_mutate_glob(module: str) -> str:
    return module + "*" if module.endswith("/") else module


def prepare(module: str, tests: list[str], workdir: Path, resume: bool) -> None:
    """Snapshot the sources and tests into ``workdir`` and write its setup.cfg for ``module``."""
    if workdir.exists() and not resume:
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for pkg in SOURCE_PACKAGES:  # always the current sources: on --resume mutmut re-tests the changed functions
        if (workdir / pkg).exists():
            shutil.rmtree(workdir / pkg)
        shutil.copytree(ROOT / pkg, workdir / pkg, ignore=ignore)
    if (workdir / "tests").exists():
        shutil.rmtree(workdir / "tests")
    shutil.copytree(ROOT / "tests", workdir / "tests", ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", workdir / "pyproject.toml")
    if (workdir / "mutants" / "tests").exists():  # mutmut copies tests/ only once: refresh them for --resume
        shutil.rmtree(workdir / "mutants" / "tests")
        shutil.copytree(ROOT / "tests", workdir / "mutants" / "tests", ignore=ignore)
    present = [t for t in tests if (ROOT / t).exists()]
    cfg = ["[mutmut]",
           "source_paths =", *(f"    {p}" for p in SOURCE_PACKAGES),
           "only_mutate =", f"    {only_mutate_glob(module)}",
           "pytest_add_cli_args_test_selection =", *(f"    {t}" for t in present + SELECTION_ARGS.get(module, [])),
           "pytest_add_cli_args =", "    -p", "    no:cacheprovider", "    -p", "    no:xdist",
           "use_git_change_detection = false",
           ""]
    (workdir / "setup.cfg").write_text("\n".join(cfg))


def load_results(workdir: Path, module: str) -> dict[str, str]:
    """mutant name -> status, from mutmut's ``mutants/**/*.py.meta`` files of ``module``."""
    statuses: dict[str, str] = {}
    base = workdir / "mutants"
    metas = [base / (module + ".meta")] if module.endswith(".py") else sorted((base / module).rglob("*.py.meta"))
    for meta in metas:
        if not meta.exists():
            continue
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            statuses[name] = STATUS_BY_EXIT_CODE.get(code, "suspicious")
    return statuses


_DIFF_SCRIPT = """
import json, sys
from mutmut.mutation.diff_apply import get_diff_for_mutant
out = {}
for name, path in json.loads(sys.stdin.read()):
    try:
        out[name] = get_diff_for_mutant(name, path=path)
    except Exception as err:  # a mutant whose code cannot be read back: report, do not stop
        out[name] = f"(no diff: {err!r})"
print(json.dumps(out))
"""


def merged_results(workdir: Path, module: str) -> dict[str, str]:
    """:func:`load_results`, where a mutant mutmut left "not checked" (it resets cached results when it finds new
    tests, and ``--rerun-survivors`` re-tests only the survivors) keeps its last recorded status; the merged
    statuses are saved in ``<workdir>/statuses.json``. Adding tests never revives a killed mutant."""
    statuses = load_results(workdir, module)
    saved_path = workdir / "statuses.json"
    saved = json.loads(saved_path.read_text()) if saved_path.exists() else {}
    for name, status in statuses.items():
        if status == "not checked" and name in saved:
            statuses[name] = saved[name]
    saved_path.write_text(json.dumps(statuses, indent=0, ensure_ascii=False))
    return statuses


def mutant_diffs(workdir: Path, names: list[str]) -> dict[str, str]:
    """mutmut's diff (relative to the mutated function) of each mutant, read in one process."""
    if not names:
        return {}
    todo = [(n, str(mutant_source(workdir, n)[0])) for n in names]
    python = Path(sys.executable)
    out = subprocess.run([str(python), "-c", _DIFF_SCRIPT], cwd=workdir, input=json.dumps(todo), text=True,
                         capture_output=True, check=False)
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {n: f"(no diff: {out.stderr.strip()[-300:]})" for n in names}


def function_lines(path: Path) -> dict[str, int]:
    """qualified function name ("f", "Class.method") -> first line (decorators included) in ``path``."""
    tree = ast.parse(path.read_text())
    found: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                found.setdefault(prefix + child.name, first)
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")

    visit(tree, "")
    return found


def mutant_source(workdir: Path, name: str) -> tuple[Path, str]:
    """(source file relative to the scratch copy, qualified function name) of mutmut mutant ``name``."""
    dotted, _, _ = name.rpartition("__mutmut_")
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        rel = Path(*parts[:cut]).with_suffix(".py")
        if not (workdir / rel).exists():
            rel = Path(*parts[:cut]) / "__init__.py"
        if (workdir / rel).exists():
            func = ".".join(parts[cut:]).replace("xǁ", "").replace("ǁ", ".").removeprefix("x_")
            return rel, func
    return Path(name), ""


def mutant_location(workdir: Path, name: str, diff: str) -> str:
    """``file:line`` of the first changed line of mutant ``name`` (mutmut's diff is relative to the function)."""
    rel, func = mutant_source(workdir, name)
    if not (workdir / rel).exists():
        return name
    start = function_lines(workdir / rel).get(func)
    if start is None:
        return str(rel)
    offset = 0
    for line in diff.splitlines():
        m = re.match(r"@@ -(\d+)", line)
        if m:
            offset = int(m.group(1)) - 1
            continue
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("-"):
            return f"{rel}:{start + offset}"
        if line.startswith(" "):
            offset += 1
    return f"{rel}:{start}"


def _natural(name: str) -> tuple[str, int]:
    head, _, number = name.rpartition("__mutmut_")
    return head, int(number) if number.isdigit() else 0


def summarise(workdir: Path, module: str, seconds: float | None) -> dict:
    statuses = merged_results(workdir, module)
    count = {s: sum(1 for v in statuses.values() if v == s) for s in set(statuses.values())}
    killed, timeout = count.get("killed", 0), count.get("timeout", 0)
    survived, no_tests = count.get("survived", 0), count.get("no tests", 0)
    other = sum(v for k, v in count.items() if k not in ("killed", "timeout", "survived", "no tests", "skipped",
                                                           "not checked"))
    tested = killed + timeout + survived + no_tests + other
    survivors = []
    diffs = mutant_diffs(workdir, [n for n, st in statuses.items() if st in ("survived", "no tests")])
    for name, status in sorted(statuses.items(), key=lambda kv: _natural(kv[0])):
        if status in ("survived", "no tests"):
            diff = diffs.get(name, "")
            survivors.append({"mutant": name, "status": status, "where": mutant_location(workdir, name, diff),
                              "diff": diff, "equivalent": EQUIVALENT.get(name)})
    n_equiv = sum(1 for s in survivors if s["equivalent"])
    score = (killed + timeout) / tested if tested else None
    score_eq = (killed + timeout) / (tested - n_equiv) if tested - n_equiv > 0 else None
    return {"killed": killed, "survived": survived, "no_tests": no_tests, "timeout": timeout, "other": other,
            "not_checked": count.get("not checked", 0), "total": len(statuses),
            "complete": count.get("not checked", 0) == 0,
            "score": None if score is None else round(score, 4),
            "score_excluding_equivalent": None if score_eq is None else round(score_eq, 4),
            "meets_bar": score_eq is not None and score_eq >= BAR and count.get("not checked", 0) == 0,
            "equivalent": n_equiv,
            "tests": MODULES[module] + SELECTION_ARGS.get(module, []),
            "seconds": None if seconds is None else round(seconds, 1),
            "survivors": survivors}


def run_module(module: str, args: argparse.Namespace, mutmut: str) -> dict:
    workdir = SCRATCH / slug(module)
    prepare(module, MODULES[module], workdir, resume=args.resume or args.report_only)
    env = dict(os.environ, PESFLOW_SHARED_DATA=str(SHARED_DATA), OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    seconds = None
    if not args.report_only:
        with contextlib.ExitStack() as stack:
            if module in NEEDS_SERVER:
                env.update(test_server(stack, workdir))
            seconds = _run_mutmut(module, args, mutmut, workdir, env)
            if seconds is None:
                return summarise(workdir, module, None)
    result = summarise(workdir, module, seconds)
    print(f"[{module}] killed {result['killed']} timeout {result['timeout']} survived {result['survived']} "
          f"no-tests {result['no_tests']} score {result['score']}", flush=True)
    return result


def test_server(stack: contextlib.ExitStack, workdir: Path) -> dict[str, str]:
    """Start a Prefect server (its own PREFECT_HOME below ``workdir``) for the run; the test environment."""
    sys.path.insert(0, str(ROOT))
    from flows.server import start_server

    server = start_server(workdir / "prefect-home")
    stack.callback(server.stop)
    print(f"Prefect server for the tests: {server.record.api_url}", flush=True)
    (workdir / "label-cache").mkdir(exist_ok=True)
    env = {"PESFLOW_TEST_PREFECT_API_URL": server.record.api_url,
           "PESFLOW_TEST_LABEL_CACHE": str(workdir / "label-cache"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_HOME": str(workdir / "prefect-home"),
           "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore"}
    reference = workdir / "reference"
    shutil.rmtree(reference, ignore_errors=True)
    made = subprocess.run([sys.executable, "-c", _MAKE_REFERENCE, str(reference), env["PESFLOW_TEST_LABEL_CACHE"]],
                          cwd=ROOT, env={**os.environ, **env, "PREFECT_API_URL": server.record.api_url},
                          capture_output=True, text=True, check=False)
    if made.returncode != 0:
        sys.exit(f"bench/mutation.py: the reference campaign failed:\n{made.stdout[-2000:]}{made.stderr[-2000:]}")
    print(f"reference campaign (unmutated code): {reference / 'run'}", flush=True)
    return {**env, "PESFLOW_TEST_REFERENCE_CAMPAIGN": str(reference / "run")}


def _run_mutmut(module: str, args: argparse.Namespace, mutmut: str, workdir: Path, env: dict) -> float | None:
    """Run mutmut for ``module`` in ``workdir``; its wall time (s), or None when there was nothing to re-run."""
    cmd = [mutmut, "run", "--max-children", str(args.workers)]
    if args.rerun_survivors:
        names = [n for n, s in merged_results(workdir, module).items() if s in ("survived", "no tests")]
        if not names:
            print(f"[{module}] no survivors to re-run")
            return None
        cmd += names
    log = workdir / "mutmut-run.log"
    print(f"[{module}] {' '.join(cmd[:5])} in {workdir.relative_to(ROOT)} (progress: {log.relative_to(ROOT)})",
          flush=True)
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        out = subprocess.run(cmd, cwd=workdir, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        tail = log.read_text(errors="replace").replace("\r", "\n").splitlines()[-15:]
        print(f"[{module}] mutmut exited with {out.returncode}; end of {log}:", *tail, sep="\n", file=sys.stderr)
    return seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--modules", nargs="+", default=list(MODULES), choices=list(MODULES), metavar="MODULE",
                   help=f"modules to mutate (default: all of {', '.join(MODULES)})")
    p.add_argument("--workers", type=int, default=1, help="mutmut --max-children (default 1)")
    p.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "mutation.json")
    p.add_argument("--resume", action="store_true", help="keep each module's scratch copy and mutmut's results")
    p.add_argument("--rerun-survivors", action="store_true",
                   help="re-test the survivors recorded in the scratch copy (implies --resume)")
    p.add_argument("--report-only", action="store_true", help="only re-read the recorded results into the JSON")
    args = p.parse_args(argv)
    args.resume = args.resume or args.rerun_survivors
    mutmut = mutmut_executable()
    report = json.loads(args.json.read_text()) if args.json.exists() else {}
    report.setdefault("modules", {})
    report["tool"] = "mutmut " + subprocess.run(
        [str(Path(mutmut).parent / "python") if (Path(mutmut).parent / "python").exists() else sys.executable,
         "-c", "import importlib.metadata as m; print(m.version('mutmut'))"],
        capture_output=True, text=True, check=False).stdout.strip()
    report["bar"] = BAR
    for module in args.modules:
        report["modules"][module] = run_module(module, args, mutmut)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(f"written to {args.json}")
    failing = [m for m in args.modules if not report["modules"][m]["meets_bar"]]
    if failing:
        print("below the bar of", BAR, ":", ", ".join(f"{m} ({report['modules'][m]['score']})" for m in failing))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
