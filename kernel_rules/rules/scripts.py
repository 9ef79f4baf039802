"""The plain-Python domain modules that run inside processes, as sandbox digests.

A process gets only the modules it imports (so that editing one module re-runs only the steps
that use it) under `kernel_rules/domain/`, plus `kconfiglib.py` where needed, and runs them with
`PYTHONPATH=.` by the host's `python3`.
"""

from __future__ import annotations

import pkgutil
from dataclasses import dataclass
from typing import Tuple

from pants.engine.fs import CreateDigest, Digest, FileContent
from pants.engine.rules import Get, collect_rules, rule

PACKAGE_INITS = ("kernel_rules/__init__.py", "kernel_rules/domain/__init__.py")


@dataclass(frozen=True)
class DomainScriptsRequest:
    modules: Tuple[str, ...]  # names under kernel_rules.domain, e.g. ("kbuild", "fragments")
    with_kconfiglib: bool = False


@dataclass(frozen=True)
class DomainScripts:
    digest: Digest


@rule
async def domain_scripts(request: DomainScriptsRequest) -> DomainScripts:
    files = [FileContent(path, b"") for path in PACKAGE_INITS]
    for module in sorted(set(request.modules)):
        data = pkgutil.get_data("kernel_rules.domain", f"{module}.py")
        assert data is not None, module
        files.append(FileContent(f"kernel_rules/domain/{module}.py", data))
    if request.with_kconfiglib:
        import kconfiglib

        with open(kconfiglib.__file__, "rb") as f:
            files.append(FileContent("kconfiglib.py", f.read()))
    return DomainScripts(await Get(Digest, CreateDigest(files)))


def rules():
    return collect_rules()
