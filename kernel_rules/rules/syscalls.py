"""Syscalls: the source's syscall -> Kconfig table, and an app profile's static and traced
syscalls (`kernel_rules.domain.syscalls.kconfig_table` and `.analyse` in a sandbox)."""

from __future__ import annotations

import os

from pants.engine.fs import Digest, DigestSubset, MergeDigests, PathGlobs, RemovePrefix
from pants.engine.process import FallibleProcessResult
from pants.engine.rules import Get, collect_rules, rule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from kernel_rules.rules.process import CACHE_DIR, DomainProcess, error_tail, tool_path, user_error
from kernel_rules.rules.source import tarball_in_sandbox
from kernel_rules.rules.types import (
    AppSyscalls,
    AppSyscallsRequest,
    SyscallTable,
    SyscallTableRequest,
    ToolchainRequest,
)

PROGRAM_DIR = "/usr/bin"  # where domain.guest.initramfs puts an app's compiled `programs`


class SyscallAnalysisError(Exception):
    """The syscall table or an app's syscall analysis failed."""


@rule(desc="Build the syscall -> Kconfig table of a kernel source", level=LogLevel.DEBUG)
async def syscall_table(request: SyscallTableRequest) -> SyscallTable:
    src = request.source
    result = await Get(
        FallibleProcessResult,
        DomainProcess(
            "kernel_rules.domain.syscalls.kconfig_table",
            (
                "--tarball",
                tarball_in_sandbox(src),
                "--sha256",
                src.sha256,
                "--cache",
                CACHE_DIR,
                "--out",
                "out",
            ),
            f"Build the syscall -> Kconfig table of {src.address}",
            ToolchainRequest(("tar", "xz"), "syscall tables"),
            immutable_inputs=FrozenDict({"linux_source": src.digest}),
            uses_cache=True,
        ),
    )
    if result.exit_code != 0:
        raise SyscallAnalysisError(
            f"{src.address}: building the syscall -> Kconfig table failed:\n" + error_tail(result)
        )
    return SyscallTable(await Get(Digest, RemovePrefix(result.output_digest, "out")))


def app_paths(fs) -> tuple:
    """Guest paths of an app profile's own programs: its compiled `programs` and `binaries`."""
    programs = [
        f"{PROGRAM_DIR}/{os.path.splitext(os.path.basename(p))[0]}" for p in fs.programs.value or ()
    ]
    return tuple(programs + list(fs.binaries.value or ()))


@rule(desc="Find the syscalls of an app profile", level=LogLevel.DEBUG)
async def app_syscalls(request: AppSyscallsRequest) -> AppSyscalls:
    traced = request.traced
    kernel = traced.kernel
    table = await Get(SyscallTable, SyscallTableRequest(kernel.config.source))
    kernel_files = await Get(
        Digest, DigestSubset(kernel.build.digest, PathGlobs(["System.map", "config"]))
    )
    addresses = await Get(
        Digest, DigestSubset(traced.trace.digest, PathGlobs(["trace/addresses.txt"]))
    )
    argv = [
        "--initramfs",
        "initramfs.cpio.gz",
        "--kconfig",
        "syscall-kconfig.json",
        "--system-map",
        "System.map",
        "--config",
        "config",
        "--addresses",
        "trace/addresses.txt",
        "--objdump",
        tool_path("objdump"),
        "--target",
        str(request.fs.address),
        "--out",
        "out",
    ]
    for path in app_paths(request.fs):
        argv += ["--app-path", path]
    result = await Get(
        FallibleProcessResult,
        DomainProcess(
            "kernel_rules.domain.syscalls.analyse",
            tuple(argv),
            f"Find the syscalls of {request.fs.address}",
            ToolchainRequest(("objdump",), "syscall analysis"),
            input_digest=await Get(
                Digest,
                MergeDigests([traced.initramfs.digest, table.digest, kernel_files, addresses]),
            ),
        ),
    )
    report = user_error(result)
    if report is not None:
        raise SyscallAnalysisError(f"{request.fs.address}: {report.get('error', report)}")
    if result.exit_code != 0:
        raise SyscallAnalysisError(
            f"{request.fs.address}: the syscall analysis failed:\n" + error_tail(result)
        )
    out = await Get(Digest, RemovePrefix(result.output_digest, "out"))
    return AppSyscalls(await Get(Digest, MergeDigests([out, table.digest])))


def rules():
    return collect_rules()
