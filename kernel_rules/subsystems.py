"""Options: `[kernel-build]` (Kbuild and its caches) and `[qemu]` (guest boots)."""

from __future__ import annotations

import os
from enum import Enum

from pants.option.option_types import EnumOption, IntOption, StrListOption, StrOption
from pants.option.subsystem import Subsystem
from pants.util.strutil import help_text

# Seconds any other step (unpack, map, compose, initramfs, measure, probe) may run before it is
# stopped: ten times the slowest measured (mapping a Debian boot, about 25 s; unpacking Debian's
# debug package, about 18 s), with room for a loaded machine.
STEP_TIMEOUT = 3600


class KernelBuildSubsystem(Subsystem):
    options_scope = "kernel-build"
    help = "How kernel_rules runs Kbuild: host tools, parallelism and warm build trees."

    search_path = StrListOption(
        default=["/usr/bin", "/bin", "/usr/sbin", "/sbin"],
        help=help_text(
            """
            Directories searched, in order, for the host tools of kernel builds, QEMU and busybox.
            Processes get exactly this `PATH`; the caller's `PATH` is never used. The tools' versions
            and sha256s are part of every build's cache key.
            """
        ),
    )
    jobs = IntOption(
        default=0,
        help=help_text(
            """
            Parallel Kbuild jobs (`make -jN`). 0 means one per core, shared with the other processes
            Pants runs at the same time. Not part of any cache key.
            """
        ),
    )
    max_warm_trees = IntOption(
        default=3,
        help=help_text(
            """
            How many warm Kbuild output trees to keep per kernel source. More trees keep more
            configurations warm at the cost of disk (a tiny kernel with debug info: ~0.5 GB a tree;
            a distribution kernel: 10+ GB). They live in the Pants named cache `kernel_rules`
            (`[GLOBAL].named_caches_dir`).
            """
        ),
    )

    build_timeout = IntOption(
        default=4 * 3600,
        help=help_text(
            """
            Seconds one Kbuild step (configure or build) may run before it is stopped and fails.
            A tiny kernel builds in minutes; a distribution kernel on 2 cores in about 15 minutes
            cold. Part of the build step's cache key (Pants keys processes on their timeout).
            """
        ),
    )

    object_cache = StrOption(
        default="",
        help=help_text(
            """
            A shared object cache for kernel builds: a ccache remote storage URL, e.g.
            `redis://cache.internal:6379` (Redis), `http://cache.internal:8080/ccache` or
            `file:///shared/ccache`. Every compiler call of a build then goes through ccache, so a
            runner without a warm tree reuses the objects other runners compiled, for any
            configuration, where the preprocessed source is the same. Off when empty. Outputs
            are byte-identical with and without it; the setting and ccache's version are part of
            the build steps' cache keys. See docs/caches.md.
            """
        ),
    )

    def make_jobs(self) -> int:
        return self.jobs if self.jobs > 0 else (os.cpu_count() or 1)


class QemuAccel(Enum):
    """The values of `[qemu].accel`."""

    auto = "auto"
    tcg = "tcg"
    kvm = "kvm"


class QemuSubsystem(Subsystem):
    options_scope = "qemu"
    help = "How kernel_rules boots guests under QEMU."

    accel_choice = EnumOption(
        "--accel",
        default=QemuAccel.auto,
        help=help_text(
            """
            `auto`: use KVM only if /dev/kvm opens and a probe boot reaches the init marker,
            otherwise TCG. `tcg`: always software emulation. `kvm`: always KVM. Any other value
            is refused when the options are read.
            """
        ),
    )

    @property
    def accel(self) -> str:
        """`[qemu].accel` as its word: `auto`, `tcg` or `kvm`."""
        return self.accel_choice.value
