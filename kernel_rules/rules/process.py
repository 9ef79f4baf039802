"""Running a domain module in a sandbox: the one `DomainProcess -> Process` wrapper.

Every step of the pipeline is a plain-Python module under `kernel_rules/domain/` run as
`python3 -m <module> ...` by the host's `python3`, with `PYTHONPATH=.`:

- `DomainScriptsRequest(module)` (rules.scripts) ships that module and its import closure.
- `DomainProcess` is a step: the module, its arguments (where `tool_path(name)` stands for a
  host tool's path), its inputs and host tools. The rule
  turns it into a Pants `Process` with the same conventions everywhere: the explicit environment
  of the fingerprinted toolchain, a timeout, outputs under `out/`, the named cache of unpacked
  sources and warm trees when the step uses it, and the remote cache asked first.
- The failure protocol: exit code 0 is success; `USER_ERROR` (3) means the step rejected its
  input and printed `{"error": ...}` (or a step-specific report) as JSON on stdout; any other
  code is a failure whose cause is the tail of stderr (`error_tail`, `ERROR_TAIL` characters).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional, Tuple

from pants.engine.fs import EMPTY_DIGEST, Digest, MergeDigests
from pants.engine.process import FallibleProcessResult, Process, ProcessCacheScope
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from kernel_rules.rules.scripts import DomainScripts, DomainScriptsRequest
from kernel_rules.rules.types import Toolchain, ToolchainRequest
from kernel_rules.subsystems import STEP_TIMEOUT

SANDBOX_SITE = "third_party/python/sandbox/site"
# The named cache of unpacked sources and warm trees, and where a process sees it.
CACHE_NAME = "kernel_rules"
CACHE_DIR = ".kernel_rules_cache"
# Expensive processes wait this long for a remote cache answer before also starting locally
# (Pants' default, 0, starts a Kbuild run that a remote hit then cancels half way).
REMOTE_CACHE_FIRST_MS = 10_000
USER_ERROR = 3
ERROR_TAIL = 6000


# ---------------------------------------------------------------------------------------------
# the step


@dataclass(frozen=True)
class DomainProcess:
    """One run of `python3 -m <module> <args...>` with the host tools of `tools`.

    `input_digest` holds the files `args` name; `immutable_inputs` are mounted read-only (e.g. the
    source tarball as `linux_source/`). `uses_cache` mounts the named cache of unpacked sources
    and warm trees at CACHE_DIR; `sandbox_site` puts the sandbox's binary wheels on PYTHONPATH.
    """

    module: str
    args: Tuple[str, ...]
    description: str
    tools: ToolchainRequest
    input_digest: Digest = EMPTY_DIGEST
    immutable_inputs: FrozenDict[str, Digest] = FrozenDict()
    output_directories: Tuple[str, ...] = ("out",)
    output_files: Tuple[str, ...] = ()
    uses_cache: bool = False
    sandbox_site: Optional[Digest] = None
    timeout_seconds: int = STEP_TIMEOUT
    concurrency_available: int = 0
    level: LogLevel = LogLevel.INFO
    remote_cache_first: bool = True
    cache_scope: ProcessCacheScope = ProcessCacheScope.SUCCESSFUL


def tool_path(tool: str) -> str:
    """An argument of `DomainProcess.args` that becomes the host path of `tool` (one of its
    `tools`) when the process is made."""
    return "{tool:" + tool + "}"


def _with_tool_paths(arg: str, toolchain: Toolchain) -> str:
    for tool, path in toolchain.paths.items():
        arg = arg.replace("{tool:" + tool + "}", path)
    return arg


@rule(level=LogLevel.DEBUG)
async def domain_process(request: DomainProcess) -> Process:
    toolchain, scripts = await MultiGet(
        Get(Toolchain, ToolchainRequest, request.tools),
        Get(DomainScripts, DomainScriptsRequest(request.module)),
    )
    inputs = [scripts.digest, request.input_digest]
    env = dict(toolchain.env)
    if request.sandbox_site is not None:
        inputs.append(request.sandbox_site)
        env["PYTHONPATH"] = f".:{SANDBOX_SITE}"
    return Process(
        [
            toolchain.python,
            "-m",
            request.module,
            *(_with_tool_paths(a, toolchain) for a in request.args),
        ],
        description=request.description,
        input_digest=await Get(Digest, MergeDigests(inputs)),
        immutable_input_digests=request.immutable_inputs,
        append_only_caches={CACHE_NAME: CACHE_DIR} if request.uses_cache else {},
        env=env,
        output_directories=request.output_directories,
        output_files=request.output_files,
        concurrency_available=request.concurrency_available,
        timeout_seconds=request.timeout_seconds,
        level=request.level,
        cache_scope=request.cache_scope,
        remote_cache_speculation_delay_millis=REMOTE_CACHE_FIRST_MS
        if request.remote_cache_first
        else 0,
    )


def error_tail(result: FallibleProcessResult) -> str:
    """The cause of a failed step: the last ERROR_TAIL characters of its stderr."""
    return result.stderr.decode(errors="replace")[-ERROR_TAIL:].strip()


def user_error(result: FallibleProcessResult) -> Optional[dict]:
    """The step's JSON report when it rejected its input (exit code USER_ERROR), else None."""
    if result.exit_code != USER_ERROR:
        return None
    try:
        return json.loads(result.stdout.decode())
    except ValueError:
        return {"error": error_tail(result)}


def rules():
    return collect_rules()
