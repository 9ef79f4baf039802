"""The plain-Python domain modules that run inside processes, as sandbox digests.

A process gets only the modules it imports (so that editing one module re-runs only the steps
that use it) under `kernel_rules/domain/`, plus `kconfiglib.py` where needed, and runs them with
`PYTHONPATH=.` by the host's `python3`.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from dataclasses import dataclass
from typing import List, Tuple

from pants.engine.fs import (
    CreateDigest, Digest, FileContent, GlobMatchErrorBehavior, MergeDigests, PathGlobs, Snapshot)
from pants.engine.rules import Get, collect_rules, rule

DOMAIN_DIR = "kernel_rules/domain"
PACKAGE_INITS = ("kernel_rules/__init__.py", "kernel_rules/domain/__init__.py")


@dataclass(frozen=True)
class DomainScriptsRequest:
    modules: Tuple[str, ...]  # names under kernel_rules.domain, e.g. ("kbuild", "fragments")
    with_kconfiglib: bool = False
    third_party: Tuple[str, ...] = ()  # pure-Python distributions to ship too, e.g. ("elftools",)


@dataclass(frozen=True)
class DomainScripts:
    digest: Digest


@rule
async def domain_scripts(request: DomainScriptsRequest) -> DomainScripts:
    files = [FileContent(path, b"") for path in PACKAGE_INITS]
    for name in (("kconfiglib",) if request.with_kconfiglib else ()) + request.third_party:
        files += _module_files(name)
    # The domain modules are read as workspace files, so that Pants sees every edit; a module
    # not in the workspace (the backend installed elsewhere, or a test's build root) is read
    # from the installed package instead.
    wanted = [f"{DOMAIN_DIR}/{m}{ext}" for m in sorted(set(request.modules)) for ext in (".py", ".c")]
    modules = await Get(Snapshot, PathGlobs(
        wanted, glob_match_error_behavior=GlobMatchErrorBehavior.ignore))
    for path in wanted:
        if path not in modules.files:
            data = _installed_domain_file(os.path.basename(path))
            if data is not None:
                files.append(FileContent(path, data))
    return DomainScripts(await Get(Digest, MergeDigests(
        [modules.digest, await Get(Digest, CreateDigest(files))])))


def _module_files(name: str) -> List[FileContent]:
    """The .py files of an installed pure-Python module or package, at their import paths."""
    module = importlib.import_module(name)
    if not hasattr(module, "__path__"):
        with open(module.__file__, "rb") as f:
            return [FileContent(f"{name}.py", f.read())]
    root = os.path.dirname(module.__file__)
    out = []
    for dirpath, _dirs, names in sorted(os.walk(root)):
        for n in sorted(names):
            if n.endswith(".py"):
                path = os.path.join(dirpath, n)
                with open(path, "rb") as f:
                    rel = os.path.join(name, os.path.relpath(path, root))
                    out.append(FileContent(rel, f.read()))
    return out


def _installed_domain_file(name: str):
    try:
        return pkgutil.get_data("kernel_rules.domain", name)
    except OSError:
        return None


def rules():
    return collect_rules()
