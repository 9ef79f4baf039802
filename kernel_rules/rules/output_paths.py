"""Where a kernel_rules target's package goes under dist/, checked to be its own.

Two targets whose `output_path` is the same directory (or one inside the other) would overwrite
each other's files under dist/. Every package rule asks for its `OutputDir` before it builds
anything, and gets an error naming both targets when the directory is not its own. The check reads
every BUILD file of the repository; when one of them does not parse, the check is skipped (a
broken BUILD file elsewhere must not stop this target).
"""

from __future__ import annotations

from pants.core.goals.package import OutputPathField
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import AllTargets

from kernel_rules.rules.types import OutputDir, OutputDirRequest

# The target types that package into a directory of their own.
PACKAGED_ALIASES = frozenset({"kernel_image", "kernel_baseline", "app_profile", "tailored_kernel"})


class OutputPathCollision(Exception):
    """Two targets would write into the same dist/ directory."""


def _overlaps(a: str, b: str) -> bool:
    a, b = a.rstrip("/") + "/", b.rstrip("/") + "/"
    return a.startswith(b) or b.startswith(a)


@rule(desc="Check the output path")
async def output_dir(request: OutputDirRequest) -> OutputDir:
    mine = request.output_path.value_or_default(file_ending=None)
    try:
        all_targets = await Get(AllTargets)
    except Exception:  # some BUILD file does not parse: its own targets report that
        return OutputDir(mine)
    clashes = sorted(
        (t.address.spec, t[OutputPathField].value_or_default(file_ending=None))
        for t in all_targets
        if t.alias in PACKAGED_ALIASES
        and t.address != request.address
        and _overlaps(mine, t[OutputPathField].value_or_default(file_ending=None))
    )
    if clashes:
        others = ", ".join(f"{spec} (`{path}`)" for spec, path in clashes)
        raise OutputPathCollision(
            f"{request.address}: field `output_path`: dist/{mine} is also where {others} "
            "packages; the two would overwrite each other's files. Give one of them another "
            "`output_path`."
        )
    return OutputDir(mine)


def rules():
    return collect_rules()
