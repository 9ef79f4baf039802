"""A trace's addresses -> a config set (`kernel_rules.domain.map.mapper` in a sandbox)."""

from __future__ import annotations

import hashlib
import json

from pants.engine.fs import (
    Digest,
    DigestContents,
    DigestSubset,
    MergeDigests,
    PathGlobs,
    RemovePrefix,
)
from pants.engine.process import FallibleProcessResult
from pants.engine.rules import Get, collect_rules, rule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from kernel_rules.rules.types import PACKAGES_DIR
from kernel_rules.rules.process import CACHE_DIR, DomainProcess, error_tail
from kernel_rules.rules.source import tarball_in_sandbox
from kernel_rules.rules.trace import TraceError
from kernel_rules.rules.types import ConfigSet, MapRequest, ToolchainRequest


@rule(desc="Map a trace to a config set", level=LogLevel.DEBUG)
async def map_trace(request: MapRequest) -> ConfigSet:
    k = request.kernel
    config_contents = await Get(DigestContents, Digest, k.config.digest)
    vmlinux_and_config = await Get(
        Digest, DigestSubset(k.build.digest, PathGlobs(["vmlinux", "config"]))
    )
    immutable = {"linux_source": k.config.source.digest}
    prebuilt_args: list = []
    if k.prebuilt is not None:
        immutable[PACKAGES_DIR] = k.prebuilt.packages
        prebuilt_args = [
            "--prefix",
            k.prebuilt.dwarf_prefix,
            "--debug-deb",
            k.prebuilt.debug_deb(),
            "--debug-sha256",
            k.prebuilt.debug_sha256,
            "--release",
            k.prebuilt.release,
        ]
    traced_on = {
        "source_sha256": k.config.source.sha256,
        "trace_config_sha256": hashlib.sha256(config_contents[0].content).hexdigest(),
        "machine_sha256": hashlib.sha256(k.machine.digest_text().encode()).hexdigest(),
        "workload_sha256": request.workload_sha256,
    }
    result = await Get(
        FallibleProcessResult,
        DomainProcess(
            "kernel_rules.domain.map.mapper",
            (
                "--tarball",
                tarball_in_sandbox(k.config.source),
                "--sha256",
                k.config.source.sha256,
                "--cache",
                CACHE_DIR,
                "--vmlinux",
                "vmlinux",
                "--config",
                "config",
                "--addresses",
                "trace/addresses.txt",
                "--trace",
                "trace/trace.json",
                "--kind",
                request.kind,
                "--target",
                str(request.target),
                "--traced-on",
                json.dumps(traced_on, sort_keys=True),
                *prebuilt_args,
                "--out",
                "out",
            ),
            f"Map the trace of {request.target} to a config set",
            ToolchainRequest(("addr2line", "gcc", "tar", "xz"), "mapping traces"),
            input_digest=await Get(
                Digest, MergeDigests([vmlinux_and_config, request.trace.digest])
            ),
            immutable_inputs=FrozenDict(immutable),
            uses_cache=True,
        ),
    )
    if result.exit_code != 0:
        raise TraceError(f"{request.target}: mapping the trace failed:\n" + error_tail(result))
    out = await Get(Digest, RemovePrefix(result.output_digest, "out"))
    contents = {c.path: c.content for c in await Get(DigestContents, Digest, out)}
    return ConfigSet(out, hashlib.sha256(contents["config-set.json"]).hexdigest())


def rules():
    return collect_rules()
