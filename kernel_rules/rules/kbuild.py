"""The Kbuild driver as a process: `KbuildProcess -> Process`, on top of `DomainProcess`.

Every configure and build step is one run of `kernel_rules.domain.build.kbuild <command>`, whose
cache key holds the tarball digest, the fragments or final `.config`, the toolchain fingerprint
and the driver's own code. The warm trees live in the named cache `kernel_rules`: they make
builds fast, never different.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from pants.engine.fs import Digest
from pants.engine.process import Process
from pants.engine.rules import Get, collect_rules, rule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from kernel_rules.domain.build.object_cache import url_problem
from kernel_rules.rules.process import CACHE_DIR, DomainProcess
from kernel_rules.rules.source import tarball_in_sandbox
from kernel_rules.rules.toolchain import kbuild_toolchain_request
from kernel_rules.rules.types import LinuxSource
from kernel_rules.subsystems import KernelBuildSubsystem


class KernelConfigError(Exception):
    """A fragment or base config is malformed or names a host file, or a requested value did not
    survive olddefconfig."""


class KernelBuildError(Exception):
    """Kbuild failed."""


@dataclass(frozen=True)
class KbuildProcess:
    """One run of the Kbuild driver (`kernel_rules.domain.build.kbuild <command>`) on `source`.

    `args` follow the common ones (tarball, cache, arch, jobs); `input_digest` holds the files
    they name. The unpacked source and the warm trees come from the named cache `kernel_rules`.
    """

    command: str  # base | configure | build
    source: LinuxSource
    arch: str
    args: Tuple[str, ...]
    input_digest: Digest
    description: str
    output_files: Tuple[str, ...] = ()


@rule(level=LogLevel.DEBUG)
async def kbuild_process(request: KbuildProcess, build: KernelBuildSubsystem) -> Process:
    object_cache = build.object_cache if request.command == "build" else ""
    problem = url_problem(object_cache) if object_cache else None
    if problem:
        raise KernelBuildError(f"[kernel-build].object_cache: {problem}")
    return await Get(
        Process,
        DomainProcess(
            "kernel_rules.domain.build.kbuild",
            (
                request.command,
                "--tarball",
                tarball_in_sandbox(request.source),
                "--sha256",
                request.source.sha256,
                "--cache",
                CACHE_DIR,
                "--arch",
                request.arch,
                "--jobs",
                "{pants_concurrency}",
                "--max-trees",
                str(build.max_warm_trees),
                "--out",
                "out",
                *request.args,
                *(("--object-cache", object_cache) if object_cache else ()),
            ),
            request.description,
            kbuild_toolchain_request(bool(object_cache)),
            input_digest=request.input_digest,
            immutable_inputs=FrozenDict({"linux_source": request.source.digest}),
            output_files=request.output_files,
            uses_cache=True,
            concurrency_available=build.make_jobs(),
            timeout_seconds=build.build_timeout,
        ),
    )


def rules():
    return collect_rules()
