"""The layering the backend relies on, checked from the sources.

- `kernel_rules/domain/` is plain Python: no module there imports Pants (or the Pants-side
  packages of kernel_rules), at any level, including imports inside functions.
- Every domain module that a rule runs (`DomainProcess(<module>, ...)` or
  `DomainScriptsRequest(<module>)` in `kernel_rules/rules/*.py`, found by parsing the rules, so a
  new step is covered without editing this file) imports with nothing but what
  `rules.scripts.import_closure` ships for it, under the host's python3 as the sandbox runs it.
- That closure is not bigger than needed: each shipped module is imported when the entry module
  is, or is reachable from an import inside a function (a lazy import).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

from kernel_rules.rules.process import SANDBOX_SITE
from kernel_rules.rules.scripts import (
    DOMAIN_DIR,
    DOMAIN_PACKAGE,
    SHIPPED_THIRD_PARTY,
    _third_party_files,
    import_closure,
    imported_modules,
)

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "kernel_rules" / "rules"
HOST_PYTHON = "/usr/bin/python3"
STEP_CALLS = ("DomainProcess", "DomainScriptsRequest")
# kernel_rules packages that are the Pants side: a domain module must not import them either.
PANTS_SIDE = (
    "pants",
    "kernel_rules.rules",
    "kernel_rules.targets",
    "kernel_rules.subsystems",
    "kernel_rules.register",
)


# --- reading the sources --------------------------------------------------------------------------


def domain_sources() -> Dict[str, str]:
    """What `rules.scripts.domain_scripts` reads: path -> text of the domain .py and .c files."""
    paths = [
        REPO / "kernel_rules/__init__.py",
        *sorted((REPO / DOMAIN_DIR).rglob("*.py")),
        *sorted((REPO / DOMAIN_DIR).rglob("*.c")),
    ]
    return {str(p.relative_to(REPO)): p.read_text() for p in paths}


def module_name(path: str) -> str:
    name = path[: -len(".py")].replace("/", ".")
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def _module_arg(node: ast.Call):
    for kw in node.keywords:
        if kw.arg == "module":
            return kw.value
    return node.args[0] if node.args else None


def step_calls() -> Iterator[Tuple[str, int, ast.Call]]:
    """Every `DomainProcess(...)`/`DomainScriptsRequest(...)` call of the rules' sources."""
    for path in sorted(RULES_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and _call_name(node) in STEP_CALLS:
                yield path.name, node.lineno, node


def step_modules() -> Dict[str, bool]:
    """The domain modules rules run -> whether every DomainProcess running it has the sandbox
    site (python-sat) on its PYTHONPATH (`sandbox_site=` given and not None)."""
    with_site: Dict[str, bool] = {}
    for _file, _line, call in step_calls():
        arg = _module_arg(call)
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            continue  # process.py's own `DomainScriptsRequest(request.module)`, checked below
        site = any(
            kw.arg == "sandbox_site"
            and not (isinstance(kw.value, ast.Constant) and kw.value.value is None)
            for kw in call.keywords
        )
        # Only a DomainProcess can pass the site; a bare DomainScriptsRequest never does.
        site = site and _call_name(call) == "DomainProcess"
        with_site[arg.value] = with_site.get(arg.value, True) and site
    return with_site


STEPS = step_modules()


def function_level_imports(source: str, module: str) -> Set[str]:
    """The names imported inside function bodies of `source` (what `import` loads lazily);
    `module` as `imported_modules` takes it."""
    names: Set[str] = set()
    for fn in ast.walk(ast.parse(source)):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    names |= imported_modules(ast.unparse(node), module)
    return names


# --- 1. no Pants in the domain --------------------------------------------------------------------


def _all_imports(source: str, module: str) -> List[Tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for name in imported_modules(ast.unparse(node), module):
                out.append((node.lineno, name))
        elif (
            isinstance(node, ast.Call)
            and _call_name(node) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            out.append((node.lineno, str(node.args[0].value)))
    return out


def test_domain_modules_do_not_import_pants():
    offenders = []
    sources = {p: t for p, t in domain_sources().items() if p.endswith(".py")}
    assert len(sources) > 10, "found no domain modules: has kernel_rules/domain/ moved?"
    for path, text in sorted(sources.items()):
        module = module_name(path) + (".__init__" if path.endswith("__init__.py") else "")
        for line, name in _all_imports(text, module):
            if any(name == side or name.startswith(side + ".") for side in PANTS_SIDE):
                offenders.append(f"{path}:{line} imports {name}")
    assert not offenders, (
        "kernel_rules/domain/ is plain Python (it runs in sandboxes without "
        "Pants):\n  " + "\n  ".join(offenders)
    )


# --- 2. every step imports from exactly what it ships ---------------------------------------------


def test_rules_name_their_steps_as_literals():
    """The collector above sees every step: a step module given as a variable would escape it."""
    assert STEPS, "found no DomainProcess/DomainScriptsRequest calls in kernel_rules/rules/"
    sources = domain_sources()
    hidden, unknown = [], []
    for file, line, call in step_calls():
        arg = _module_arg(call)
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            path = f"{arg.value.replace('.', '/')}.py"
            if not arg.value.startswith(DOMAIN_PACKAGE + ".") or path not in sources:
                unknown.append(f"{file}:{line} {arg.value}")
        elif not (file == "process.py" and _call_name(call) == "DomainScriptsRequest"):
            hidden.append(f"{file}:{line} {ast.unparse(call)[:80]}")
    assert not hidden, "name the module of a step as a string literal:\n  " + "\n  ".join(hidden)
    assert not unknown, "steps that are no domain module:\n  " + "\n  ".join(unknown)


def _ship(module: str, dest: Path) -> List[str]:
    """Lays out in `dest` exactly what a step running `module` ships; returns the domain files."""
    sources = domain_sources()
    needed, third_party = import_closure(module, sources)
    for path in needed:
        (dest / path).parent.mkdir(parents=True, exist_ok=True)
        (dest / path).write_text(sources[path])
    for name in third_party:
        for f in _third_party_files(name):
            (dest / f.path).parent.mkdir(parents=True, exist_ok=True)
            (dest / f.path).write_bytes(f.content)
    return needed


def _host_python(code: str, cwd: Path, pythonpath: List[str]) -> subprocess.CompletedProcess:
    """The host's python3, as a step runs it, but isolated: no site-packages (-S: what the sandbox
    needs must be shipped, not happen to be installed here), no user site, no repository."""
    env = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONPATH": ":".join(pythonpath),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return subprocess.run(
        [HOST_PYTHON, "-S", "-s", "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _sandbox_site(module: str) -> List[str]:
    if not STEPS[module]:
        return []
    site = REPO / SANDBOX_SITE
    if not (site / "pysat").is_dir():
        pytest.skip(
            f"{module} runs with the sandbox site, and {SANDBOX_SITE}/ has no python-sat "
            "here: run ./pants --version once (setup step 3) to install it"
        )
    return [str(site)]


@pytest.fixture(scope="module", autouse=True)
def _host_python_present():
    if not os.access(HOST_PYTHON, os.X_OK):
        pytest.skip(f"{HOST_PYTHON} (what steps run with) is missing")


@pytest.mark.parametrize("module", sorted(STEPS))
def test_step_imports_with_only_its_shipped_closure(module, tmp_path):
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    _ship(module, sandbox)
    code = (
        f"import sys, {module}, kernel_rules; "
        f"assert kernel_rules.__file__.startswith({str(sandbox)!r}), kernel_rules.__file__"
    )
    proc = _host_python(code, sandbox, [str(sandbox), *_sandbox_site(module)])
    assert proc.returncode == 0, (
        f"{module} does not import with only what import_closure ships for it "
        f"(in {sandbox}):\n{proc.stderr[-3000:]}"
    )


LIST_DOMAIN_MODULES = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted((name, getattr(m, "__file__", None) or "")
                        for name, m in sys.modules.items()
                        if name == "kernel_rules" or name.startswith("kernel_rules."))))
"""


@pytest.mark.parametrize("module", sorted(STEPS))
def test_step_closure_is_not_bigger_than_needed(module, tmp_path):
    sources = domain_sources()
    shipped = {p for p in import_closure(module, sources)[0] if p.endswith(".py")}
    site = _sandbox_site(module)
    third_party = tmp_path / "third_party"
    third_party.mkdir()
    for name in SHIPPED_THIRD_PARTY:
        for f in _third_party_files(name):
            (third_party / f.path).parent.mkdir(parents=True, exist_ok=True)
            (third_party / f.path).write_bytes(f.content)
    proc = subprocess.run(
        [HOST_PYTHON, "-S", "-s", "-c", LIST_DOMAIN_MODULES, module],
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": ":".join([str(REPO), str(third_party), *site]),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = {
        str(Path(f).resolve().relative_to(REPO))
        for name, f in json.loads(proc.stdout)
        if f and Path(f).resolve().is_relative_to(REPO)
    }
    assert loaded <= shipped, f"{module} imports modules that are not shipped: {loaded - shipped}"

    # What is shipped but not loaded must be reachable from a function-level import of a shipped
    # module: the closure of every lazily imported name.
    lazy: Set[str] = set()
    for path in shipped:
        name = module_name(path) + (".__init__" if path.endswith("__init__.py") else "")
        for target in function_level_imports(sources[path], name):
            if target.startswith(DOMAIN_PACKAGE + "."):
                lazy.update(import_closure(target, sources)[0])
    packages = {p for p in shipped if p.endswith("__init__.py")}
    unneeded = shipped - loaded - packages - lazy
    assert not unneeded, (
        f"import_closure ships {sorted(unneeded)} for {module}, which neither imports them nor "
        "imports them inside a function: the closure over-approximates, so edits to them re-run "
        "this step for nothing"
    )


def test_sandbox_isolation_is_real(tmp_path):
    """The harness itself: a module of the repository does not import from an empty sandbox."""
    proc = _host_python("import kernel_rules.domain", tmp_path, [str(tmp_path)])
    assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr
    proc = _host_python("import elftools", tmp_path, [str(tmp_path)])
    assert proc.returncode != 0, "the host python3 finds elftools without it being shipped"
