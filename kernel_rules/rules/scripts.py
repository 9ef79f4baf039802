"""The plain-Python domain modules a step runs, as sandbox digests.

`DomainScriptsRequest(module)` ships that module and its import closure: the domain modules it
imports, directly or not, their packages' `__init__.py`, the data files they name (C sources,
Jinja2 templates: `DATA_SUFFIXES`), and the pure-Python third-party modules of
`SHIPPED_THIRD_PARTY` it imports. A process's cache key holds
exactly those files, so editing a module re-runs only the steps that import it.
"""

from __future__ import annotations

import ast
import importlib
import os
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Set, Tuple

from pants.engine.fs import (
    CreateDigest,
    Digest,
    DigestContents,
    DigestSubset,
    FileContent,
    GlobMatchErrorBehavior,
    MergeDigests,
    PathGlobs,
)
from pants.engine.rules import Get, MultiGet, collect_rules, rule

DOMAIN_PACKAGE = "kernel_rules.domain"
DOMAIN_DIR = "kernel_rules/domain"
# Pure-Python distributions a domain module may import and that are shipped with it. Binary ones
# (python-sat) come from the sandbox site instead (`DomainProcess.sandbox_site`).
SHIPPED_THIRD_PARTY = ("kconfiglib", "elftools")
# Domain files that are not modules and are shipped with a module that names them (its text holds
# the file's name): C sources the guests compile, templates a report renders.
DATA_SUFFIXES = (".c", ".j2")


@dataclass(frozen=True)
class DomainScriptsRequest:
    module: str  # dotted, e.g. "kernel_rules.domain.build.kbuild"


@dataclass(frozen=True)
class DomainScripts:
    digest: Digest
    files: Tuple[str, ...]


def module_path(module: str, files: Iterable[str]) -> Optional[str]:
    """The file of a dotted module among `files` (a module or a package), or None."""
    base = module.replace(".", "/")
    for candidate in (f"{base}.py", f"{base}/__init__.py"):
        if candidate in files:
            return candidate
    return None


def imported_modules(source: str, module: str) -> Set[str]:
    """Every dotted name `source` (the text of `module`) may import: each `import a.b`, and for
    `from a import b` both `a` and `a.b` (b may be a submodule). Imports inside functions count."""
    names: Set[str] = set()
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_closure(entry: str, sources: Dict[str, str]) -> Tuple[List[str], List[str]]:
    """The domain files `entry` needs (paths in `sources`, which maps path -> text), and the
    top-level third-party names of SHIPPED_THIRD_PARTY it imports. Package `__init__.py` files of
    every module are included, and each data file (`DATA_SUFFIXES`) of `sources` whose name a
    needed module mentions."""
    needed: Set[str] = set()
    third_party: Set[str] = set()
    todo = [entry]
    seen: Set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        top = name.split(".")[0]
        if top in SHIPPED_THIRD_PARTY:
            third_party.add(top)
            continue
        if not name.startswith(DOMAIN_PACKAGE):
            continue
        parts = name.split(".")
        for i in range(2, len(parts)):
            init = module_path(".".join(parts[:i]), sources)
            if init:
                needed.add(init)
        path = module_path(name, sources)
        if path is None:
            continue  # a name imported from a module, not a module
        needed.add(path)
        todo.extend(
            imported_modules(
                sources[path], name if not path.endswith("__init__.py") else name + ".__init__"
            )
        )
    needed.add("kernel_rules/__init__.py")
    modules = [sources[p] for p in needed if p.endswith(".py")]
    needed.update(
        p
        for p in sources
        if p.endswith(DATA_SUFFIXES) and any(os.path.basename(p) in text for text in modules)
    )
    return sorted(needed), sorted(third_party)


def _installed_domain_files() -> List[FileContent]:
    """The domain package as installed, for a build root without its sources (a test's)."""
    import kernel_rules

    root = os.path.dirname(kernel_rules.__file__)
    out = [FileContent("kernel_rules/__init__.py", b"")]
    for dirpath, _dirs, names in sorted(os.walk(os.path.join(root, "domain"))):
        for n in sorted(names):
            if n.endswith((".py", *DATA_SUFFIXES)):
                path = os.path.join(dirpath, n)
                with open(path, "rb") as f:
                    out.append(
                        FileContent(
                            os.path.join("kernel_rules", os.path.relpath(path, root)), f.read()
                        )
                    )
    return out


def _third_party_files(name: str) -> List[FileContent]:
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
                    out.append(
                        FileContent(os.path.join(name, os.path.relpath(path, root)), f.read())
                    )
    return out


@rule
async def domain_scripts(request: DomainScriptsRequest) -> DomainScripts:
    # Read as workspace files, so that Pants sees every edit; a build root without the domain
    # sources (the backend installed elsewhere) uses the installed package.
    workspace = await Get(
        Digest,
        PathGlobs(
            [
                "kernel_rules/__init__.py",
                f"{DOMAIN_DIR}/**/*.py",
                *(f"{DOMAIN_DIR}/**/*{suffix}" for suffix in DATA_SUFFIXES),
            ],
            glob_match_error_behavior=GlobMatchErrorBehavior.ignore,
        ),
    )
    contents = await Get(DigestContents, Digest, workspace)
    if not any(c.path == f"{DOMAIN_DIR}/__init__.py" for c in contents):
        files = _installed_domain_files()
        workspace = await Get(Digest, CreateDigest(files))
        contents = await Get(DigestContents, Digest, workspace)
    sources = {c.path: c.content.decode() for c in contents}
    needed, third_party = import_closure(request.module, sources)
    extra = [f for name in third_party for f in _third_party_files(name)]
    subset, extra_digest = await MultiGet(
        Get(Digest, DigestSubset(workspace, PathGlobs(needed))),
        Get(Digest, CreateDigest(extra)),
    )
    return DomainScripts(
        await Get(Digest, MergeDigests([subset, extra_digest])),
        tuple(needed + [f.path for f in extra]),
    )


def rules():
    return collect_rules()
