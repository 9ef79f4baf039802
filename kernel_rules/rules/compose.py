"""Traced config sets + `force`/`forbid` -> a composed `.config` (`kernel_rules.domain.compose.tailor`: MaxSAT, then olddefconfig)."""

from __future__ import annotations

import json
from typing import List

from pants.engine.fs import (
    AddPrefix,
    CreateDigest,
    Digest,
    DigestContents,
    DigestSubset,
    FileContent,
    MergeDigests,
    PathGlobs,
    RemovePrefix,
    Snapshot,
)
from pants.engine.process import FallibleProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from kernel_rules.rules.process import (
    CACHE_DIR,
    DomainProcess,
    SANDBOX_SITE,
    error_tail,
    user_error,
)
from kernel_rules.rules.source import tarball_in_sandbox
from kernel_rules.rules.toolchain import kbuild_toolchain_request
from kernel_rules.rules.types import (
    AppSyscalls,
    AppSyscallsRequest,
    ComposeRequest,
    ComposedConfig,
    KernelConfig,
)


class TailorError(Exception):
    """A tailored kernel cannot be composed: bad fields, inputs, or unsatisfiable requirements."""


async def digest_texts(digest: Digest) -> dict:
    return {c.path: c.content.decode() for c in await Get(DigestContents, Digest, digest)}


@rule(desc="Compose a tailored kernel configuration", level=LogLevel.DEBUG)
async def compose_config(request: ComposeRequest) -> ComposedConfig:
    opts, inputs = request.options, request.inputs
    kernel = inputs.baseline.kernel
    source = kernel.config.source
    site = await Get(Snapshot, PathGlobs([f"{SANDBOX_SITE}/**", f"!{SANDBOX_SITE}/bin/**"]))
    if not any(f.startswith(f"{SANDBOX_SITE}/pysat/") for f in site.files):
        raise TailorError(
            f"{SANDBOX_SITE}/ has no python-sat: run ./pants once more (its setup "
            "installs third_party/python/sandbox-requirements.txt there)."
        )
    sets = [("baseline", str(inputs.baseline.kernel.baseline), inputs.baseline.config_set.digest)]
    sets += [("app", str(a.address), t.config_set.digest) for a, t in inputs.apps]
    set_digests = await MultiGet(
        Get(Digest, AddPrefix(d, f"sets/{i}")) for i, (_, _, d) in enumerate(sets)
    )
    trace_files = await Get(Digest, DigestSubset(kernel.build.digest, PathGlobs(["sizes.json"])))
    trace_dir = await Get(
        Digest,
        AddPrefix(await Get(Digest, MergeDigests([kernel.config.digest, trace_files])), "trace"),
    )
    argv = [
        "--tarball",
        tarball_in_sandbox(source),
        "--sha256",
        source.sha256,
        "--cache",
        CACHE_DIR,
        "--arch",
        kernel.config.arch,
        "--jobs",
        "1",
        "--target",
        str(opts.address),
        "--trace-config",
        "trace/.config",
        "--sizes",
        "trace/sizes.json",
        "--objective",
        opts.objective,
        "--out",
        "out",
    ]
    for i, (_kind, label, _) in enumerate(sets):
        argv += ["--set", f"{label}=sets/{i}/config-set.json"]
    for line in opts.force:
        argv += ["--force", line]
    for name in opts.forbid:
        argv += ["--forbid", name]
    if opts.debug_info:
        argv += ["--debug-info"]
    if opts.embed_config:
        argv += ["--embed-config"]
    extra: List[Digest] = []
    if opts.static_syscalls != "off":
        argv += ["--static-scope", opts.static_syscalls]
    if opts.static_syscalls != "off" or request.soft:
        # Kept with static coverage; with minimisation they order the search (options gating
        # only syscalls no app makes are tried first).
        found = await MultiGet(
            Get(AppSyscalls, AppSyscallsRequest(app_fs, traced)) for app_fs, traced in inputs.apps
        )
        for i, ((app_fs, _), syscalls) in enumerate(zip(inputs.apps, found)):
            argv += ["--static-syscalls", f"{app_fs.address}=static/{i}/syscalls.json"]
            extra.append(
                await Get(
                    Digest,
                    AddPrefix(
                        await Get(
                            Digest,
                            DigestSubset(
                                syscalls.digest,
                                PathGlobs(["syscalls.json", "syscall-kconfig.json"]),
                            ),
                        ),
                        f"static/{i}",
                    ),
                )
            )
        if request.soft and found:
            argv += ["--syscall-table", "static/0/syscall-kconfig.json"]
    if request.soft:
        argv += ["--soft", request.soft]
    if request.drop:
        argv += ["--drop-file", "drop.json"]
        extra.append(
            await Get(
                Digest,
                CreateDigest(
                    [FileContent("drop.json", json.dumps(sorted(request.drop), indent=1).encode())]
                ),
            )
        )
    result = await Get(
        FallibleProcessResult,
        DomainProcess(
            "kernel_rules.domain.compose.tailor",
            tuple(argv),
            f"Compose {opts.address} ({len(sets)} config sets, objective {opts.objective}"
            + (f", {len(request.drop)} soft requirements left out)" if request.drop else ")"),
            kbuild_toolchain_request(),
            input_digest=await Get(Digest, MergeDigests([trace_dir, *set_digests, *extra])),
            immutable_inputs=FrozenDict({"linux_source": source.digest}),
            uses_cache=True,
            sandbox_site=site.digest,
        ),
    )
    report = user_error(result)
    if report is not None:
        raise TailorError(f"{opts.address}: {report['error']}")
    if result.exit_code != 0:
        raise TailorError(
            f"{opts.address}: composing the configuration failed (exit code "
            f"{result.exit_code}):\n" + error_tail(result)
        )
    out = await Get(Digest, RemovePrefix(result.output_digest, "out"))
    config, rest = await MultiGet(
        Get(Digest, DigestSubset(out, PathGlobs([".config"]))),
        Get(
            Digest, DigestSubset(out, PathGlobs(["requirements.json", "compose.json", "soft.json"]))
        ),
    )
    return ComposedConfig(
        KernelConfig(opts.address, source, kernel.config.arch, config, opts.layout), rest
    )


def rules():
    return collect_rules()
