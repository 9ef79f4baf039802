"""`pants kernel-progress`: how far the Kbuild builds running on this machine are.

The build step publishes its progress in the named cache (`kernel_rules.domain.build.progress`);
this goal reads it in a process that mounts the same cache and is never cached itself. Another
Pants run holds pantsd while it builds, so run this one beside it with `--concurrent`:
`pants --concurrent kernel-progress`.
"""

from __future__ import annotations

import json
import time

from pants.engine.console import Console
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.process import ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, collect_rules, goal_rule
from pants.option.option_types import EnumOption
from pants.util.logging import LogLevel

from kernel_rules.domain.build.progress import BuildProgress
from kernel_rules.rules.process import CACHE_DIR, DomainProcess
from kernel_rules.rules.types import OutputFormat, ToolchainRequest


class KernelProgressSubsystem(GoalSubsystem):
    name = "kernel-progress"
    help = (
        "Show how far the kernel builds running on this machine are: objects compiled against "
        "what the build expects to compile, per warm tree. Run it beside the build with "
        "`pants --concurrent kernel-progress`; minimisation tries are logged by the build itself."
    )

    format = EnumOption(
        default=OutputFormat.text,
        help="`text` for people, `json` for tools (the records of "
        "`kernel_rules.domain.build.progress`).",
    )


class KernelProgress(Goal):
    subsystem_cls = KernelProgressSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


@goal_rule
async def kernel_progress(console: Console, subsystem: KernelProgressSubsystem) -> KernelProgress:
    result = await Get(
        ProcessResult,
        DomainProcess(
            "kernel_rules.domain.build.progress",
            ("--cache", CACHE_DIR),
            "Read the progress of running kernel builds",
            ToolchainRequest((), "reading build progress"),
            output_directories=(),
            uses_cache=True,
            level=LogLevel.DEBUG,
            remote_cache_first=False,
            cache_scope=ProcessCacheScope.PER_SESSION,
        ),
    )
    report = json.loads(result.stdout)
    if subsystem.format == OutputFormat.json:
        console.print_stdout(json.dumps(report, indent=2, sort_keys=True))
        return KernelProgress(exit_code=0)
    builds = [BuildProgress(**b) for b in report["builds"]]
    if not builds:
        console.print_stdout("No kernel build is running on this machine.")
    now = report.get("now", time.time())
    for build in builds:
        console.print_stdout(build.describe(now))
    return KernelProgress(exit_code=0)


def rules():
    return collect_rules()
