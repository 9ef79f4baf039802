"""Find and fingerprint the host tools (rule side of `kernel_rules.domain.build.toolchain`)."""

from __future__ import annotations

import hashlib
import json

from pants.core.util_rules.system_binaries import BinaryPathRequest, BinaryPaths
from pants.engine.process import Process, ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, collect_rules, rule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from kernel_rules.domain.build.toolchain import KBUILD_TOOLS, OBJECT_CACHE_TOOLS
from kernel_rules.rules.scripts import DomainScripts, DomainScriptsRequest
from kernel_rules.rules.types import Toolchain, ToolchainRequest
from kernel_rules.subsystems import KernelBuildSubsystem, STEP_TIMEOUT


class MissingToolError(Exception):
    """A host tool a step needs is not on `[kernel-build].search_path`."""


@rule(desc="Fingerprint host tools", level=LogLevel.DEBUG)
async def find_toolchain(request: ToolchainRequest, build: KernelBuildSubsystem) -> Toolchain:
    python_paths = await Get(
        BinaryPaths,
        BinaryPathRequest(binary_name="python3", search_path=build.search_path),
    )
    python = python_paths.first_path
    if python is None:
        raise MissingToolError(
            f"kernel_rules needs `python3` for {request.purpose}, and it is not in "
            f"[kernel-build].search_path {build.search_path}. Install it: apt-get install python3"
        )
    scripts = await Get(DomainScripts, DomainScriptsRequest("kernel_rules.domain.build.toolchain"))
    result = await Get(
        ProcessResult,
        Process(
            (
                python.path,
                "-m",
                "kernel_rules.domain.build.toolchain",
                ":".join(build.search_path),
                *request.tools,
            ),
            description=f"Probe host tools for {request.purpose}",
            timeout_seconds=STEP_TIMEOUT,
            input_digest=scripts.digest,
            env={"PYTHONPATH": ".", "PATH": ":".join(build.search_path)},
            cache_scope=ProcessCacheScope.PER_SESSION,
            level=LogLevel.DEBUG,
        ),
    )
    probe = json.loads(result.stdout)
    if probe["missing"]:
        tools = ", ".join(m["tool"] for m in probe["missing"])
        packages = " ".join(sorted({m["package"] for m in probe["missing"]}))
        raise MissingToolError(
            f"kernel_rules cannot run {request.purpose}: missing {tools} on "
            f"[kernel-build].search_path {build.search_path}.\n"
            f"Install with: apt-get install {packages}   (or run ./pants once as root, which "
            "installs every system package kernel_rules needs)"
        )
    fingerprint = json.dumps({"python": python.fingerprint, **probe["fingerprint"]}, sort_keys=True)
    env = {
        "PATH": ":".join(build.search_path),
        "PYTHONPATH": ".",
        "LC_ALL": "C",
        "TZ": "UTC",
        "HOME": "/nonexistent",
        "KERNEL_RULES_TOOLCHAIN": hashlib.sha256(fingerprint.encode()).hexdigest(),
    }
    return Toolchain(
        python.path, FrozenDict(probe["paths"]), env["KERNEL_RULES_TOOLCHAIN"], FrozenDict(env)
    )


def kbuild_toolchain_request(object_cache: bool = False) -> ToolchainRequest:
    """Kbuild's tools; with the object cache, ccache too (its version is then in the key)."""
    tools = {**KBUILD_TOOLS, **(OBJECT_CACHE_TOOLS if object_cache else {})}
    return ToolchainRequest(tuple(sorted(tools)), "kernel builds")


def rules():
    return collect_rules()
