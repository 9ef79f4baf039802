#!/usr/bin/env python3
"""Tailored kernels against distribution kernels: Debian's cloud kernel, `localmodconfig` and a
hand-written tinyconfig, for the debian-cloud apps (nginx, redis, memcached) and all three.

For each app and for the combined kernel `all`, four kernels side by side, all made by the
product:
- *tailored*: the kernel the pipeline builds, `dist/examples.debian-cloud/<app>-kernel/`
  (`all-kernel` for `all`), as `pants package examples/debian-cloud::` leaves it;
- *debian*: Debian's cloud kernel as shipped, the packages of third_party/debian/cloud-kernel.lock
  (checked against their sha256), unpacked and measured by the product's prebuilt step
  (`kernel_rules.domain.prebuilt.debian.unpack`: vmlinuz, DWARF vmlinux, config, sizes.json);
- *localmod*: `make localmodconfig` on Debian's cloud configuration with the modules the traced
  guest had loaded (its `KR_MODULE` console lines), plus DEBIAN_FIXES, as the `base_config` of a
  `kernel_image` in a BUILD file this script writes to benchmarks/distro-scratch/ (removed
  afterwards), built with `./pants package`; its modules installed from the warm tree that built
  it (a `kernel_image` does not package modules);
- *tiny*: the `kernel_image` targets `benchmarks/distro:tiny-<app>` (benchmarks/distro/BUILD):
  tinyconfig, the lines of the kernel's kvm_guest.config that apply on x86_64, `base.config`, the
  app's fragment (`all` takes every app's), built with `./pants package`; all built in.

Measured for each: enabled options (=y, =m), vmlinux text/data/bss and compressed image bytes
(the package's sizes.json), code (the sum of function symbol sizes, `nm -S`), installed module
bytes, boot time to the app being ready under QEMU TCG (host wall clock from QEMU's start to the
console line `KR_APP_READY`, median of --boots runs), guest memory in use after boot
(`KR_MEMINFO`: MemTotal - MemAvailable) and whether the workload passed (the framed report of
the product's app /init with status 0, and the app_profile's `success` regex, as `pants test`
judges it). Also the pipeline's own timings: compose.json and report.json of each tailored
kernel, and --timings FILE (default docs/benchmarks/distro-timings.json when it exists): a JSON
object {step: seconds} or {step: {group: seconds}} (group among nginx, redis, memcached, all), or
the JSON benchmarks/distro_timings.py writes; one table row per step. Prints a Markdown page and
writes docs/benchmarks.md.

The guests are the apps' traced images, `dist/examples.debian-cloud/<app>/initramfs.cpio.gz`
(the product's app /init; they carry Debian's modules), on the machine of the `virtio`
kernel_baseline as `pants peek examples/debian-cloud:` reads it. The localmodconfig kernel gets
a second gzip cpio appended to the image with its own modules and /etc/kernel_rules/modules (in
the product's load order, `prebuilt.debian.load_order`). The `all` kernels run every app's image.
--dev-image boots stand-in images instead, built by the product's initramfs program with the
product's app /init (busybox, the host's nginx/redis-server/memcached, a few requests each).

Usage:
  .venv/bin/python benchmarks/distro.py                 # everything (builds are Pants-cached)
  .venv/bin/python benchmarks/distro.py --build-only    # just package the comparison kernels
  .venv/bin/python benchmarks/distro.py --dev-image     # boot stand-in images (busybox + the
                                                        # host's nginx/redis/memcached)
  options: --apps nginx,redis,memcached,all  --kinds tailored,debian,localmod,tiny  --boots N
           --timings FILE  --no-write  --out PAGE
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.lib.guest import app_image, appended  # noqa: E402
from benchmarks.lib.kbuild import install_modules, last_build, localmodconfig, warm_tree_for  # noqa: E402
from benchmarks.lib.measure import (  # noqa: E402
    code_bytes,
    enabled_counts,
    image_release,
    modules_bytes as ko_bytes,
    read_config,
    read_sizes,
)
from benchmarks.lib.pants import dist, package, peek, scratch_targets, step_durations  # noqa: E402
from benchmarks.lib.report import cpu_model, fmt_int, gcc_version, qemu_version  # noqa: E402
from benchmarks.lib.source import cloud_debs, named_cache, read_lock, SOURCE_LOCK, source_tree  # noqa: E402
from kernel_rules.domain.guest.init import MODULE_LIST  # noqa: E402
from kernel_rules.domain.guest.protocol import (  # noqa: E402
    DONE,
    INIT_MARKER,
    MEMINFO,
    MODULE_LINE,
    UPTIME,
    verdict,
    workload_report,
)
from kernel_rules.domain.guest.qemu import BootSpec, Machine, command_line, watch_console  # noqa: E402
from kernel_rules.domain.prebuilt import debian as prebuilt  # noqa: E402

APPS = ("nginx", "redis", "memcached")
GROUPS = APPS + ("all",)
DIST = dist("examples/debian-cloud:virtio").parent
HERE = REPO / "benchmarks/distro"
SCRATCH_TARGETS = REPO / "benchmarks/distro-scratch"
OUT = REPO / "docs/benchmarks.md"
SCRATCH = Path(os.environ.get("KR_DISTRO_SCRATCH", "/var/tmp/distro-bench"))
BASELINE_NAME = "virtio"
# What the baseline guest loads on Debian's cloud kernel, used while no traced console log of an
# app exists.
DEFAULT_MODULES = (
    "virtio",
    "virtio_ring",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "net_failover",
    "failover",
    "virtio_net",
    "virtio_blk",
    "virtio_rng",
)
# Debian's configuration outside Debian's tree: no key files of Debian's, no debug info (speed).
# Module signing stays on (Kbuild makes a throw-away key), as Debian's modules are signed.
DEBIAN_FIXES = {
    "SYSTEM_TRUSTED_KEYS": '""',
    "SYSTEM_REVOCATION_KEYS": '""',
    "DEBUG_INFO_NONE": "y",
    "DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT": "n",
    "DEBUG_INFO_DWARF4": "n",
    "DEBUG_INFO_DWARF5": "n",
    "DEBUG_INFO_BTF": "n",
    "LOCALVERSION": '"-localmod"',
}
# Printed by the workloads (examples/debian-cloud/*_workload.sh, DEV_APPS) once the server
# answers; the product's protocol has no such line. The rest are the protocol's markers.
APP_READY = "KR_APP_READY"
MEM_LINE = re.compile(re.escape(MEMINFO) + r" (\d+) (\d+)")
KIND_LABELS = {
    "tailored": "tailored (t)",
    "minimised": "tailored, minimised (m)",
    "debian": "Debian cloud (a)",
    "localmod": "localmodconfig (b)",
    "tiny": "tinyconfig + fragments (c)",
}
KINDS = tuple(KIND_LABELS)
_CLOUD = read_lock(REPO / "third_party/debian/cloud-kernel.lock")
DEBIAN_PACKAGE = _CLOUD["image_package"][: -len("-unsigned")]
DEBIAN_VERSION = _CLOUD["version"]


def log(msg: str) -> None:
    print(f"distro: {msg}", file=sys.stderr, flush=True)


def rel(p: Path) -> str:
    """`p` relative to the repository when it is inside it."""
    try:
        return str(p.relative_to(REPO))
    except ValueError:
        return str(p)


# --------------------------------------------------------------------------------------------
# Inputs: the machine and profiles (as the product reads them), Debian's kernel, module lists


def baseline_and_profiles(use_dev: bool) -> Tuple[Machine, str, str, Dict[str, dict]]:
    """(machine, extra cmdline, where it came from, app_profiles) from `pants peek`."""
    targets = peek("examples/debian-cloud:")
    b = targets.get(BASELINE_NAME)
    if b is None:
        sys.exit(f"distro: no kernel_baseline {BASELINE_NAME!r} in examples/debian-cloud/BUILD")
    m = Machine(b["machine"], b["cpus"], b["memory"], tuple(b["devices"] or ()))
    profiles = (
        {} if use_dev else {n: t for n, t in targets.items() if t["target_type"] == "app_profile"}
    )
    return m, b["cmdline"], f"examples/debian-cloud:{BASELINE_NAME} (`pants peek`)", profiles


@dataclass
class Debian:
    release: str
    version: str
    out: Path  # the product's unpack output: bzImage, vmlinux, config, sizes.json
    image_deb: Path


def debian_kernel() -> Debian:
    """Debian's packages, pin-checked, unpacked and measured once by the product's prebuilt step."""
    image_deb, debug_deb, lock = cloud_debs()
    out = SCRATCH / "debian" / lock["image_sha256"][:16]
    if not (out / "prebuilt.json").exists():
        log(f"unpacking and measuring {image_deb.name} (+ -dbg) into {out}")
        src_lock = read_lock(SOURCE_LOCK)
        prebuilt.unpack(
            str(image_deb),
            str(debug_deb),
            lock["debug_sha256"],
            str(named_cache()),
            src_lock["debian_version"].split("-")[0],
            src_lock["debian_version"],
            source_tree(),
            str(out),
        )
    info = json.loads((out / "prebuilt.json").read_text())
    return Debian(info["release"], info["version"], out, image_deb)


def traced_modules(app: str) -> Tuple[List[str], str]:
    """The modules loaded in the app's traced guest (its console's KR_MODULE lines); the default
    list while there is no traced console."""
    console = DIST / app / "console.log"
    names = (
        [m[0] for m in MODULE_LINE.findall(console.read_text(errors="replace"))]
        if console.exists()
        else []
    )
    if not names:
        return sorted(DEFAULT_MODULES), "default list (no traced console yet)"
    return sorted({n.replace("-", "_") for n in names}), rel(console)


# --------------------------------------------------------------------------------------------
# The kernels, each a product output


@dataclass
class Kernel:
    kind: str
    group: str
    name: str
    out: Optional[Path] = None  # the directory with bzImage, vmlinux, config, sizes.json
    config: Dict[str, str] = field(default_factory=dict)
    modules_root: Optional[Path] = None  # holds lib/modules/<release>/ (None: no modules)
    modules_count: Optional[Tuple[int, int]] = None  # (bytes, count) when known otherwise
    release: str = ""
    build: dict = field(default_factory=dict)  # {"seconds", "configure_seconds", ...}
    missing: str = ""  # why the kernel is not there
    notes: List[str] = field(default_factory=list)
    boot_modules: List[str] = field(default_factory=list)  # modules to load (overlay), by name

    @property
    def image(self) -> Path:
        return self.out / "bzImage"

    @property
    def modules_dir(self) -> Optional[Path]:
        d = self.modules_root / "lib/modules" / self.release if self.modules_root else None
        return d if d and d.is_dir() else None


def from_package(kernel: Kernel, address: str, pants_log: str) -> Kernel:
    """Fill `kernel` from `address`'s dist/ directory and the build step of `pants_log`."""
    kernel.out = dist(address)
    if not (kernel.out / "sizes.json").exists():
        kernel.missing = f"{rel(kernel.out)}/ has no sizes.json (`./pants package {address}`)"
        return kernel
    kernel.config = read_config(kernel.out / "config")
    kernel.release = image_release(kernel.image)
    steps = dict(step_durations(pants_log))
    conf = next(
        (s for d, s in steps.items() if d.startswith("Configure kernel") and address in d), None
    )
    make = next(
        (s for d, s in steps.items() if d.startswith("Build kernel") and address in d), None
    )
    tree = warm_tree_for(kernel.config)
    stats = last_build(tree) if tree else {}
    kernel.build = {
        "configure_seconds": conf if conf is not None else "-",
        "seconds": make if make is not None else stats.get("seconds", "?"),
        "compiled": stats.get("compiled", "?"),
        "cold": stats.get("distance", 0) is None,
        "warm": make is None,
    }
    return kernel


def tiny_fragments(group: str) -> List[Path]:
    apps = APPS if group == "all" else (group,)
    return [
        HERE / "kvm_guest.config",
        HERE / "base.config",
        *(HERE / f"{a}.config" for a in apps),
        HERE / "localversion.config",
    ]


def localmod_build(
    groups: Sequence[str], debian: Debian, mods: Dict[str, Tuple[List[str], str]]
) -> Tuple[Dict[str, str], str]:
    """Package one localmodconfig kernel_image per group from a generated BUILD file;
    ({group: address}, Pants' log)."""
    debian_config = (debian.out / "config").read_text()
    fixes = "".join(
        f"# CONFIG_{s} is not set\n" if v == "n" else f"CONFIG_{s}={v}\n"
        for s, v in DEBIAN_FIXES.items()
    )
    files, build, addresses = {}, [], {}
    for g in groups:
        log(f"localmod {g}: make localmodconfig with {len(mods[g][0])} modules")
        files[f"{g}.config"] = (
            localmodconfig(debian_config, mods[g][0])
            + "\n# benchmarks/distro.py DEBIAN_FIXES\n"
            + fixes
        )
        build.append(
            f'kernel_image(name="localmod-{g}", source="//third_party/linux:linux-6.1",\n'
            f'    base_config="{g}.config")\n'
        )
    with scratch_targets(SCRATCH_TARGETS, "".join(build), files) as spec:
        addresses = {g: f"{spec}:localmod-{g}" for g in groups}
        log(f"./pants package {spec}:: (nice: Kbuild runs as the product runs it)")
        pants_log = package(*addresses.values())
    return addresses, pants_log


def localmod_kernel(
    group: str, address: str, pants_log: str, modules: List[str], modules_source: str
) -> Kernel:
    k = from_package(Kernel("localmod", group, f"localmod-{group}"), address, pants_log)
    if k.missing:
        return k
    dropped = [
        f"{s}={v} (got {k.config.get(s, 'n')})"
        for s, v in DEBIAN_FIXES.items()
        if k.config.get(s, '""' if v == '""' else "n") != v
    ]
    if dropped:
        k.notes.append("requested values olddefconfig did not keep: " + ", ".join(dropped))
    root = SCRATCH / "modules" / f"{group}-{k.release}"
    if not (root / "lib/modules" / k.release / "modules.dep").exists():
        k.modules_root = install_modules(k.config, root)
        if k.modules_root is None:
            k.notes.append("modules not installed: no warm tree holds this configuration any more")
    else:
        k.modules_root = root
    k.boot_modules = list(modules)
    k.notes.append(f"modules from {modules_source}: {', '.join(modules)}")
    have = {
        prebuilt.module_name(str(p)) for p in (k.modules_dir or Path("/nonexistent")).rglob("*.ko")
    }
    off = [m for m in modules if m not in have]
    if off:
        k.notes.append(f"not built as modules here (built in or dropped): {', '.join(off)}")
    return k


def tiny_kernel(group: str, pants_log: str) -> Kernel:
    k = from_package(
        Kernel("tiny", group, f"tiny-{group}"), f"benchmarks/distro:tiny-{group}", pants_log
    )
    k.notes.append("fragments: " + ", ".join(rel(f) for f in tiny_fragments(group)))
    return k


def tailored_kernel(group: str, kind: str = "tailored") -> Kernel:
    """The pipeline's kernel for `group`: `<group>-kernel`, or with kind `minimised`
    `<group>-minimised` (`minimise="baseline"`: verified on the baseline's boot check and the
    apps' workloads)."""
    name = f"{group}-kernel" if kind == "tailored" else f"{group}-minimised"
    k = Kernel(kind, group, name, out=DIST / name)
    absent = [n for n in ("bzImage", "vmlinux", "config", "sizes.json") if not (k.out / n).exists()]
    if absent:
        k.missing = (
            f"{rel(k.out)}/ has no {', '.join(absent)} "
            f"(run `./pants package examples/debian-cloud:{name}`)"
        )
        return k
    k.config = read_config(k.out / "config")
    k.release = image_release(k.image)
    for name in ("report.json", "compose.json", "minimise.json", "verified-baseline.json"):
        if (k.out / name).exists():
            k.build[name] = json.loads((k.out / name).read_text())
    if k.config.get("MODULES") == "y" and any(v == "m" for v in k.config.values()):
        k.notes.append("has =m options, but a tailored kernel's package holds no modules")
    return k


def debian_as_kernel(group: str, debian: Debian, modules: List[str]) -> Kernel:
    sizes = read_sizes(debian.out)
    count = json.loads((debian.out / "prebuilt.json").read_text())["modules"]
    k = Kernel(
        "debian",
        group,
        f"debian-{debian.release}",
        out=debian.out,
        config=read_config(debian.out / "config"),
        release=debian.release,
        modules_count=(sizes["modules_bytes"], count),
    )
    k.boot_modules = list(modules)
    k.notes.append(
        f"{DEBIAN_PACKAGE}-unsigned {debian.version} (+ -dbg for vmlinux), "
        f"from {rel(debian.image_deb.parent)}"
    )
    return k


# --------------------------------------------------------------------------------------------
# Guest images and boots


def module_files(kernel: Kernel) -> Optional[Dict[str, bytes]]:
    """The kernel's modules for the guest's loaded list (and their dependencies) and the
    product's /etc/kernel_rules/modules listing them in the product's load order."""
    if not kernel.modules_dir or not kernel.boot_modules:
        return None
    have = {prebuilt.module_name(str(p)) for p in kernel.modules_dir.rglob("*.ko")}
    order = prebuilt.load_order(
        str(kernel.modules_dir), [m for m in kernel.boot_modules if m in have]
    )
    files = {
        f"lib/modules/{kernel.release}/{p}": (kernel.modules_dir / p).read_bytes() for p in order
    }
    files[MODULE_LIST] = "".join(p + "\n" for p in order).encode()
    return files


# The stand-in apps of --dev-image: host binaries and a workload that prints KR_APP_READY on the
# console once the server answers (as the debian-cloud workloads do), run by the product's /init.
_WAIT = r"""wait_for() { i=0; until "$@" >/dev/null 2>&1; do i=$((i + 1)); [ $i -ge 200 ] && return 1; sleep 0.1; done; echo KR_APP_READY > /dev/console; }
"""
DEV_APPS = {
    "nginx": {
        "binaries": ["/usr/sbin/nginx"],
        "files": {
            "app/nginx.conf": "user www-data; worker_processes 1; daemon on; pid /run/nginx.pid;\n"
            "error_log /tmp/nginx-error.log;\n"
            "events { worker_connections 64; }\n"
            "http { access_log off; sendfile on;\n"
            "  server { listen 127.0.0.1:8080; root /app/www; } }\n",
            "app/www/index.html": "kr-nginx-ok\n",
        },
        "workload": _WAIT + "mkdir -p /var/lib/nginx /var/log/nginx\n"
        "nginx -c /app/nginx.conf -e /tmp/nginx-error.log || exit 10\n"
        "wait_for wget -q -O /tmp/out http://127.0.0.1:8080/index.html "
        "|| { cat /tmp/nginx-error.log; exit 11; }\n"
        "for n in 1 2 3 4 5; do wget -q -O /tmp/out "
        "http://127.0.0.1:8080/index.html || exit 12; done\n"
        "grep -q kr-nginx-ok /tmp/out\n",
    },
    "redis": {
        "binaries": ["/usr/bin/redis-server", "/usr/bin/redis-cli"],
        "files": {},
        "workload": _WAIT + "redis-server --bind 127.0.0.1 --port 6379 --daemonize yes "
        "--save '' --appendonly no --dir /tmp --logfile /tmp/redis.log "
        "|| exit 10\n"
        "wait_for redis-cli ping || { cat /tmp/redis.log; exit 11; }\n"
        "redis-cli set kr redis-ok >/dev/null || exit 12\n"
        "redis-cli incr n >/dev/null && redis-cli lpush l a b c >/dev/null "
        "|| exit 13\n"
        '[ "$(redis-cli get kr)" = redis-ok ]\n',
    },
    "memcached": {
        "binaries": ["/usr/bin/memcached"],
        "files": {},
        "workload": _WAIT + "memcached -d -u root -l 127.0.0.1 -p 11211 -U 0 -t 2 -m 16 "
        "-P /tmp/memcached.pid || exit 10\n"
        "wait_for sh -c 'echo version | nc 127.0.0.1 11211 | grep -q VERSION' "
        "|| exit 11\n"
        "printf 'set kr 0 0 12\\r\\nmemcached-ok\\r\\nget kr\\r\\nquit\\r\\n' "
        "| nc 127.0.0.1 11211 > /tmp/out\n"
        "grep -q memcached-ok /tmp/out\n",
    },
}
DEV_ETC = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/false\n"
    "nobody:x:65534:65534::/nonexistent:/bin/false\n",
    "etc/group": "root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n",
}


def dev_image(app: str) -> Path:
    """A stand-in for the app's image, built by the product's initramfs program with the
    product's app /init: busybox, the app's Debian binaries (with their libraries), a workload."""
    spec = DEV_APPS[app]
    out = SCRATCH / "images" / f"dev-{app}.cpio.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kr-distro-dev-") as tmp_dir:
        tmp = Path(tmp_dir)
        files = []
        for i, (dest, text) in enumerate({**DEV_ETC, **spec["files"]}.items()):
            (tmp / f"f{i}").write_text(text)
            files.append((tmp / f"f{i}", dest))
        (tmp / "workload.sh").write_text(spec["workload"])
        image = app_image(
            tmp,
            f"dev-{app}",
            f"benchmarks/distro.py:dev-{app}",
            tmp / "workload.sh",
            files,
            spec["binaries"],
        )
        out.write_bytes(image.read_bytes())
    return out


def app_images(group: str, use_dev: bool) -> List[Tuple[str, Optional[Path]]]:
    """(app, image) pairs to boot for a group; image None when the app's image is missing."""
    if use_dev:
        return [(a, dev_image(a)) for a in (APPS if group == "all" else (group,))]
    if group == "all":
        combined = DIST / "all" / "initramfs.cpio.gz"
        if combined.exists():
            return [("all", combined)]
        return [
            (a, DIST / a / "initramfs.cpio.gz")
            if (DIST / a / "initramfs.cpio.gz").exists()
            else (a, None)
            for a in APPS
        ]
    p = DIST / group / "initramfs.cpio.gz"
    return [(group, p if p.exists() else None)]


def image_for(kernel: Kernel, app: str, image: Path) -> Path:
    """The image to boot: the app's, plus a module overlay for kernels whose modules the app
    image does not carry (localmod; Debian's too when booting the stand-in image)."""
    files = module_files(kernel)
    if not files:
        return image
    import hashlib

    key = hashlib.sha256(image.read_bytes() + repr(sorted(files)).encode()).hexdigest()[:16]
    out = SCRATCH / "images" / f"{app}-{kernel.release}-{key}.cpio.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    return out if out.exists() else appended(image, files, out)


def _host_busy_seconds() -> float:
    """CPU seconds the whole host has been busy (all CPUs), from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:9]]
    return (sum(vals) - vals[3] - vals[4]) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def boot_once(
    kernel: Kernel,
    initrd: Path,
    machine: Machine,
    cmdline: str,
    timeout: float,
    console_path: Path,
    success: Optional[str],
) -> dict:
    spec = BootSpec("qemu-system-x86_64", str(kernel.image), str(initrd), cmdline, machine, "tcg")
    marks: Dict[str, float] = {}
    scanned = [0]
    start = time.monotonic()

    console_path.parent.mkdir(parents=True, exist_ok=True)
    live = open(console_path, "wb")  # written as it comes, to follow a hung guest

    def on_output(buf: bytes, proc: subprocess.Popen) -> Optional[float]:
        now = time.monotonic() - start
        window = buf[max(0, scanned[0] - 64) :]
        live.write(buf[scanned[0] :])
        live.flush()
        scanned[0] = len(buf)
        for name in (INIT_MARKER, APP_READY, DONE):
            if name not in marks and name.encode() in window:
                marks[name] = round(now, 2)
        return 10.0 if DONE in marks else None

    load = os.getloadavg()[0]
    busy0, qemu0, wall0 = _host_busy_seconds(), _children_cpu(), time.monotonic()
    try:
        run = watch_console(command_line(spec), timeout, on_output, stdin=subprocess.PIPE)
        buf, timed_out = run.console, run.timed_out
    finally:
        live.close()
    wall = time.monotonic() - wall0
    # CPU the rest of the host used meanwhile (in CPUs): near 0 on a quiet host
    other = max(0.0, (_host_busy_seconds() - busy0) - (_children_cpu() - qemu0)) / wall
    console = buf.decode(errors="replace").replace("\r", "")
    console_path.write_text(console)
    mem = MEM_LINE.search(console)
    report = workload_report(console)
    up = UPTIME.search(console)
    return {
        "init_s": marks.get(INIT_MARKER),
        "ready_s": marks.get(APP_READY),
        "uptime_init": float(up.group(1)) if up else None,
        "mem_total_kb": int(mem.group(1)) if mem else None,
        "mem_used_kb": int(mem.group(1)) - int(mem.group(2)) if mem else None,
        "status": report.status,
        "timed_out": timed_out,
        "verdict": (
            f"no {DONE} within {timeout:.0f} s"
            if timed_out and report.status is None
            else verdict(report, success)
        ),
        "modules": [m[0] for m in MODULE_LINE.findall(console)],
        "load": round(load, 2),
        "other_cpu": round(other, 2),
        "console": str(console_path),
    }


def boot_kernel(
    kernel: Kernel,
    images: List[Tuple[str, Optional[Path]]],
    boots: int,
    machine: Machine,
    cmdline: str,
    profiles: Dict[str, dict],
    cache: Dict,
) -> dict:
    """Boot `kernel` `boots` times with each image; results summarised over all runs."""
    runs: List[dict] = []
    missing = [app for app, img in images if img is None]
    for app, img in images:
        if img is None:
            continue
        initrd = image_for(kernel, app, img)
        ck = (str(kernel.image), str(initrd))
        if ck not in cache:
            got = []
            for i in range(boots):
                prof = profiles.get(app, {})
                r = boot_once(
                    kernel,
                    initrd,
                    machine,
                    cmdline,
                    float(prof.get("timeout", 900)),
                    SCRATCH / "consoles" / f"{kernel.name}-{app}-{i + 1}.log",
                    prof.get("success"),
                )
                r["app"] = app
                log(
                    f"boot {kernel.name} with {app} #{i + 1}: ready {r['ready_s']} s, "
                    f"status {r['status']} {r['verdict'] or 'passed'}, in use "
                    f"{r['mem_used_kb']} kB, other CPU {r['other_cpu']}"
                )
                got.append(r)
                if r["verdict"]:
                    log(f"not repeating {kernel.name} with {app} after a failed run")
                    break
            cache[ck] = got
        runs += cache[ck]
    uptime = [r["uptime_init"] for r in runs if r["uptime_init"] is not None]
    ready = [r["ready_s"] for r in runs if r["ready_s"] is not None]
    init = [r["init_s"] for r in runs if r["init_s"] is not None]
    used = [r["mem_used_kb"] for r in runs if r["mem_used_kb"] is not None]
    passed = sum(1 for r in runs if not r["verdict"])
    return {
        "runs": len(runs),
        "passed": passed,
        "missing_images": missing,
        "ready_median": statistics.median(ready) if len(ready) == len(runs) and runs else None,
        "ready_range": (min(ready), max(ready)) if ready else None,
        "init_median": statistics.median(init) if init else None,
        "uptime_median": statistics.median(uptime) if uptime else None,
        "mem_used_median_kb": statistics.median(used) if used else None,
        "mem_total_kb": runs[0]["mem_total_kb"] if runs else None,
        "load_max": max((r["load"] for r in runs), default=None),
        "other_cpu": [r["other_cpu"] for r in runs],
        "failed": [
            f"{r['app']}: {r['verdict']}, console `{r['console']}`" for r in runs if r["verdict"]
        ],
        "modules_loaded": sorted({m for r in runs for m in r["modules"]}),
    }


# --------------------------------------------------------------------------------------------
# Measurements and the page


def modules_bytes(kernel: Kernel) -> Tuple[Optional[int], int]:
    """(sum of .ko bytes installed, count); (0, 0) for a kernel without modules."""
    if kernel.modules_count is not None:
        return kernel.modules_count
    if kernel.config.get("MODULES") != "y" or not any(v == "m" for v in kernel.config.values()):
        return 0, 0
    if not kernel.modules_dir:
        return None, 0
    return ko_bytes(kernel.modules_dir)


def measure(kernel: Kernel) -> dict:
    """From the package's own sizes.json (the product's measurement) and config; code from nm."""
    if kernel.missing:
        return {"missing": kernel.missing}
    y, m = enabled_counts(kernel.config)
    sizes = read_sizes(kernel.out)
    text, data, bss = sizes["vmlinux"]
    mod_bytes, mod_count = modules_bytes(kernel)
    return {
        "y": y,
        "m": m,
        "text": text,
        "data": data,
        "bss": bss,
        "code": code_bytes(kernel.out / "vmlinux"),
        "image": sizes["bzImage"],
        "modules_bytes": mod_bytes,
        "modules": mod_count,
        "release": kernel.release,
    }


def machine_info() -> List[str]:
    import platform

    mem = next(
        int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal")
    )
    return [
        f"{os.cpu_count()} CPUs (`nproc`), {cpu_model()}, {mem // 1024 // 1024} GiB RAM",
        f"{platform.platform()}; {qemu_version()}; {gcc_version()}",
        f"/dev/kvm: {'present (not used)' if os.path.exists('/dev/kvm') else 'absent'}; "
        "every boot uses TCG",
    ]


TIMINGS_JSON = REPO / "docs/benchmarks/distro-timings.json"


def normalise_timings(data: dict) -> dict:
    """{step: value | {group: value}} from --timings: either that already, or the JSON of
    benchmarks/distro_timings.py (its `steps`, and its `full_builds` of the tailored kernels;
    the rest is on the section that script appends to the page)."""
    if not any(k in data for k in ("steps", "builds", "full_builds")):
        return data
    rows: dict = dict(data.get("steps", {}))
    for kernel, b in sorted(data.get("full_builds", {}).items()):
        group = kernel[: -len("-kernel")] if kernel.endswith("-kernel") else kernel
        rows.setdefault("full (cold) build of the tailored kernel (Kbuild)", {})[group] = (
            f"{b.get('seconds')} ({b.get('compiled')}/{b.get('objects')} objects)"
        )
    return rows


def timings_section(
    kernels: Dict[Tuple[str, str], Kernel], groups: Sequence[str], extra: Optional[dict]
) -> List[str]:
    """The pipeline's own timings: composition (compose.json), build and app check
    (report.json) per tailored kernel, plus rows from --timings FILE ({step: seconds} or
    {step: {group: seconds}})."""
    rows: Dict[str, Dict[str, object]] = {}
    for g in groups:
        k = kernels.get(("tailored", g))
        if k is None:
            continue
        comp = k.build.get("compose.json") or k.build.get("report.json", {}).get("composition", {})
        for step, sec in (comp.get("seconds") or {}).items():
            rows.setdefault(f"compose: {step}", {})[g] = sec
        rep = k.build.get("report.json", {})
        if rep.get("build", {}).get("seconds") is not None:
            b = rep["build"]
            rows.setdefault("build that produced it (Kbuild)", {})[g] = (
                f"{b['seconds']} ({b.get('compiled')}/{b.get('objects')} objects)"
            )
        for r in rep.get("app_results", []):
            rows.setdefault(f"app check {r.get('name')}: whole run", {})[g] = r.get("seconds")
    for step, val in (extra or {}).items():
        if isinstance(val, dict):
            for g, sec in val.items():
                rows.setdefault(step, {})[g] = sec
        else:
            rows.setdefault(step, {})["(not per kernel)"] = val
    cols = list(groups) + (
        ["(not per kernel)"] if any("(not per kernel)" in v for v in rows.values()) else []
    )
    if not rows:
        return [
            "No pipeline timings yet: no compose.json/report.json under "
            f"`{DIST.relative_to(REPO)}/*-kernel/` and no `--timings FILE`."
        ]
    out = ["| step (seconds) | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for step, vals in rows.items():
        out.append(f"| {step} | " + " | ".join(str(vals.get(c, "-")) for c in cols) + " |")
    return out


def render(args, groups, kernels, sizes, boots, machine_desc, modules_src, elapsed) -> str:
    cmd = ".venv/bin/python benchmarks/distro.py" + "".join(f" {a}" for a in sys.argv[1:])
    lines = [
        "# Tailored kernels against distribution kernels (debian-cloud apps)",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M %Z')} by `{cmd}` ({elapsed:.0f} s this run; "
        "every kernel is built by `./pants package`, cached by Pants and built in its warm "
        "trees).",
        "",
        *(f"- {line}" for line in machine_info()),
        f"- guest: {machine_desc}; {args.boots} boots per kernel and image",
        "",
    ]
    if args.dev_image:
        lines += [
            "**Stand-in images:** these numbers come from `--dev-image` (busybox, the "
            "host's nginx/redis-server/memcached and a few requests each), not from the "
            "apps' traced images. They prove the build/boot/measure machinery only.",
            "",
        ]
    lines += [
        "Kernels:",
        f"- **{KIND_LABELS['tailored']}**: `dist/examples.debian-cloud/<app>-kernel/` from the "
        "pipeline (trace, map, compose, build).",
        f"- **{KIND_LABELS['minimised']}**: `dist/examples.debian-cloud/<app>-minimised/`, the "
        'same with `minimise="baseline"`: the baseline\'s boot-time requirements are bisected '
        "with its boot check (once for all its kernels), then the app's delta with its workload "
        "(docs/composition.md).",
        f"- **{KIND_LABELS['debian']}**: `{DEBIAN_PACKAGE}-unsigned` {DEBIAN_VERSION} as "
        "shipped (vmlinuz, config, modules; vmlinux from the `-dbg` package), unpacked and "
        "measured by the product's prebuilt step.",
        f"- **{KIND_LABELS['localmod']}**: `make localmodconfig` on Debian's cloud configuration "
        "with the modules the traced guest loaded, as the `base_config` of a `kernel_image` "
        "built by `./pants package` from the pinned 6.1.192 source. "
        "Changed from Debian's configuration: "
        + ", ".join(f"`{k}={v}`" for k, v in DEBIAN_FIXES.items())
        + " (debug info and BTF off only "
        "to keep the build fast: they do not change text/data/bss or the compressed image, "
        "but the modules would be larger with them, before stripping). Modules installed "
        "with `INSTALL_MOD_STRIP=1` from the warm tree that built it and signed with a "
        "Kbuild-generated key, as Debian's are stripped and signed.",
        f"- **{KIND_LABELS['tiny']}**: `benchmarks/distro:tiny-<app>`, a `kernel_image`: "
        "`tinyconfig`, then `benchmarks/distro/kvm_guest.config` (the kernel's "
        "kvm_guest.config without what does not apply on x86_64), "
        "`benchmarks/distro/base.config` and the app's fragment (`all`: every app's), "
        "`olddefconfig`; everything built in.",
        "",
        "Boot: host wall clock from QEMU's start to the console line `KR_APP_READY` (the "
        "workload prints it once the app answers its first request), QEMU TCG, median of all "
        "runs (range in brackets). Every image's /init first waits for the kernel log to be "
        "quiet (3 checks 0.2 s apart, as for tracing), so every kernel pays at least 0.6 s "
        "of that. Init marker: host time to `KERNEL_RULES_INIT_OK` (after the image's module "
        "loading). Memory in use: MemTotal - MemAvailable when user space starts "
        "(`KR_MEMINFO`); it includes the unpacked initramfs (the same files for every "
        "kernel). Passed: `KR_WORKLOAD_STATUS 0` and the app_profile's `success` regex "
        "found on the console, on every run. Guest uptime at init: the guest's own clock "
        "when /init printed its marker (the kernel's boot as the guest sees it). Other host "
        "CPU: CPUs the rest of the host kept busy during the boots (from /proc/stat minus "
        "QEMU's own CPU time); anything near 1 or more on this 2-CPU machine slows TCG "
        "guests. A kernel that is the same file in several groups (Debian's; localmodconfig "
        "when the module lists agree) is booted once per image and its runs appear in each "
        "group; `all` runs every app's image. Code: sum of function symbol sizes (`nm -S`); "
        "`size` text includes rodata and is padded to 2 MiB on x86_64. Build times are "
        "this machine's, in warm trees (cold: the tree's first build; incremental: after "
        "another configuration of the same kind), under whatever else ran.",
        "",
    ]
    goals: List[str] = []
    for g in groups:
        lines += [f"## {g}", ""]
        present = [k for k in KINDS if (k, g) in kernels]
        lines += [
            "| | " + " | ".join(KIND_LABELS[k] for k in present) + " |",
            "|---|" + "---:|" * len(present),
        ]

        def row(label, fn):
            cells = []
            for k in present:
                s = sizes[(k, g)]
                cells.append(s["missing_short"] if "missing" in s else fn(k, s))
            lines.append(f"| {label} | " + " | ".join(cells) + " |")

        row("release", lambda k, s: f"`{s['release']}`")
        row("enabled options =y / =m", lambda k, s: f"{s['y']:,} / {s['m']:,}")
        row("vmlinux text (`size`)", lambda k, s: fmt_int(s["text"]))
        row("vmlinux data / bss", lambda k, s: f"{fmt_int(s['data'])} / {fmt_int(s['bss'])}")
        row("code (function symbols)", lambda k, s: fmt_int(s["code"]))
        row("compressed image bytes", lambda k, s: fmt_int(s["image"]))
        row(
            "modules bytes (count)",
            lambda k, s: (
                "n/a"
                if s["modules_bytes"] is None
                else f"{fmt_int(s['modules_bytes'])} ({s['modules']})"
            ),
        )

        def bootcell(key, fmt):
            def f(k, s):
                b = boots.get((k, g))
                if not b:
                    return "not booted"
                if not b["runs"]:
                    return "no image"
                return fmt(b)

            return f

        row(
            "boot to ready, s (TCG)",
            bootcell(
                "ready",
                lambda b: (
                    f"{b['ready_median']:.2f} [{b['ready_range'][0]:.2f}-{b['ready_range'][1]:.2f}]"
                    if b["ready_median"] is not None
                    else "never ready"
                ),
            ),
        )
        row(
            "boot to init marker, s",
            bootcell(
                "init", lambda b: f"{b['init_median']:.2f}" if b["init_median"] is not None else "-"
            ),
        )
        row(
            "guest uptime at init, s",
            bootcell(
                "uptime",
                lambda b: f"{b['uptime_median']:.2f}" if b["uptime_median"] is not None else "-",
            ),
        )
        row(
            "other host CPU during boots",
            bootcell(
                "other",
                lambda b: f"{statistics.median(b['other_cpu']):.2f}" if b["other_cpu"] else "-",
            ),
        )
        row(
            "memory in use after boot, MiB",
            bootcell(
                "mem",
                lambda b: (
                    f"{b['mem_used_median_kb'] / 1024:.1f}"
                    if b["mem_used_median_kb"] is not None
                    else "-"
                ),
            ),
        )
        row(
            "workload passed",
            bootcell(
                "pass",
                lambda b: (
                    f"{'yes' if b['passed'] == b['runs'] else 'NO'} ({b['passed']}/{b['runs']})"
                    + (
                        f"; no image: {', '.join(b['missing_images'])}"
                        if b["missing_images"]
                        else ""
                    )
                ),
            ),
        )
        row(
            "build, s: configure + make (objects compiled)",
            lambda k, s: (
                f"{s['build']['configure_seconds']} + {s['build']['seconds']} "
                f"({s['build'].get('compiled', '?')}, "
                f"{'cold' if s['build'].get('cold') else 'incremental'}"
                + (", cached" if s["build"].get("warm") else "")
                + ")"
                if s.get("build")
                else "-"
            ),
        )
        lines.append("")
        for k in present:
            for n in kernels[(k, g)].notes:
                lines.append(f"- {KIND_LABELS[k]}: {n}")
            b = boots.get((k, g))
            for f in (b or {}).get("failed", []):
                lines.append(f"- {KIND_LABELS[k]}: FAILED {f}")
        lines.append("")
        a, ba = sizes.get(("debian", g), {}), boots.get(("debian", g)) or {}

        def text_ratio(kind: str) -> Optional[float]:
            t = sizes.get((kind, g), {})
            return t["text"] / a["text"] if "text" in t and "text" in a else None

        def boot_ratio(kind: str) -> Optional[float]:
            b = boots.get((kind, g)) or {}
            if b.get("ready_median") and ba.get("ready_median"):
                return b["ready_median"] / ba["ready_median"]
            return None

        def others(fn) -> str:
            return (
                ", ".join(f"{k} {fn(k):.1%}" for k in ("localmod", "tiny") if fn(k) is not None)
                or "-"
            )

        def uptime_ratio(kind: str) -> Optional[float]:
            b = boots.get((kind, g)) or {}
            if b.get("uptime_median") and ba.get("uptime_median"):
                return b["uptime_median"] / ba["uptime_median"]
            return None

        def mem_ratio(kind: str) -> Optional[float]:
            b = boots.get((kind, g)) or {}
            if b.get("mem_used_median_kb") and ba.get("mem_used_median_kb"):
                return b["mem_used_median_kb"] / ba["mem_used_median_kb"]
            return None

        def detail_text(kind: str) -> str:
            return f"{sizes[(kind, g)]['text']:,} / {a['text']:,}"

        def detail_uptime(kind: str) -> str:
            b = boots[(kind, g)]
            return f"{b['uptime_median']:.2f} s / {ba['uptime_median']:.2f} s"

        def detail_mem(kind: str) -> str:
            b = boots[(kind, g)]
            return (
                f"{b['mem_used_median_kb'] / 1024:.1f} / {ba['mem_used_median_kb'] / 1024:.1f} MiB"
            )

        for kind in ("tailored", "minimised"):
            if (kind, g) not in kernels:
                continue
            for what, limit, fn, detail in (
                ("vmlinux text (`size`)", 0.25, text_ratio, detail_text),
                ("guest uptime at init", 0.5, uptime_ratio, detail_uptime),
                ("memory in use after boot", 0.3, mem_ratio, detail_mem),
            ):
                r = fn(kind)
                goals.append(
                    f"| {g} | {what}, {KIND_LABELS[kind]} / Debian <= {limit:.0%} | "
                    + (
                        f"{r:.1%} ({detail(kind)}) | {'met' if r <= limit else 'NOT met'}"
                        if r is not None
                        else "- | unknown (kernel or boot missing)"
                    )
                    + f" | {others(fn)} |"
                )
    lines += [
        "## Goals",
        "",
        "| kernel | goal | measured | | for comparison: (b), (c) / Debian |",
        "|---|---|---:|---|---|",
        *goals,
        "",
    ]
    if args.dev_image:
        lines += ["(Boot goals above are measured with the stand-in image, not the apps.)", ""]
    minimised = [(g, kernels[("minimised", g)]) for g in groups if ("minimised", g) in kernels]
    minimised = [(g, k) for g, k in minimised if not k.missing and "minimise.json" in k.build]
    if minimised:
        lines += [
            "## Cost of the minimisation",
            "",
            "From each minimised kernel's `verified-baseline.json` (the baseline's tries, shared by "
            "its kernels) and `minimise.json` (the kernel's own tries on top); Kbuild seconds as "
            "measured when each try was built, under whatever else ran.",
            "",
            "| kernel | step | tries | builds | boots | objects compiled | Kbuild s | complete |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for g, k in minimised:
            for step, record in (
                ("verified baseline", k.build.get("verified-baseline.json")),
                ("its apps' delta", k.build["minimise.json"]),
            ):
                if not record:
                    continue
                c = record["cost"]
                lines.append(
                    f"| {g} | {step} | {c['tries']} | {c['builds']} | {c['boots']} | "
                    f"{fmt_int(c['objects_compiled'])} | {c['build_seconds']:.0f} | "
                    f"{'yes' if record['complete'] else 'no'} |"
                )
        lines.append("")
    lines += [
        "## Pipeline timings",
        "",
        "From each tailored kernel's compose.json and report.json (the build that "
        "produced it: incremental when its warm tree held a similar configuration)"
        + (f" and `{rel(Path(args.timings))}`" if args.timings else "")
        + ".",
        "",
        *timings_section(kernels, groups, args.timings_data),
        "",
    ]
    if any(k == "tiny" for k, _ in kernels):
        lines += [
            "## The hand-written fragments of (c)",
            "",
            "Applied in this order after `make tinyconfig` and `benchmarks/distro/kvm_guest.config`; "
            "the comments say what each option was found to be needed for.",
            "",
        ]
        frags = sorted(
            {f for g in groups for f in tiny_fragments(g)},
            key=lambda f: (f.name != "kvm_guest.config", f.name != "base.config", f.name),
        )
        for f in frags:
            body = f.read_text().rstrip("\n") if f.exists() else "(missing)"
            lines += [f"`{rel(f)}`:", "", "```", body, "```", ""]
    loads = [b["load_max"] for b in boots.values() if b and b.get("load_max") is not None]
    other = sorted(c for b in boots.values() if b for c in b.get("other_cpu", []))
    if other:
        lines += [
            f"Host CPU used by other processes during the boots (a TCG guest uses one of "
            f"the {os.cpu_count()} CPUs itself): median {statistics.median(other):.2f}, "
            f"max {other[-1]:.2f} CPUs; 1-minute load average at boot start at most "
            f"{max(loads):.2f}. Values near {os.cpu_count() - 1} or more mean the "
            "guests competed for CPU and boot times are inflated.",
            "",
        ]
    lines += [
        f"Module lists for localmodconfig: {modules_src}.",
        "",
        "Re-run: `.venv/bin/python benchmarks/distro.py` from the repository root "
        f"(scratch for images, consoles and Debian's unpacked packages: `{SCRATCH}`, "
        "`KR_DISTRO_SCRATCH` to move it; builds are Pants-cached).",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="distro", description=__doc__.splitlines()[0])
    p.add_argument(
        "--apps",
        default=",".join(GROUPS),
        help="comma-separated groups among nginx,redis,memcached,all",
    )
    p.add_argument("--boots", type=int, default=3)
    p.add_argument(
        "--timings",
        help="JSON {step: seconds | {group: seconds}}, or the JSON of "
        "benchmarks/distro_timings.py, to add to the timings table (default: "
        f"{TIMINGS_JSON.relative_to(REPO)} when it exists)",
    )
    p.add_argument("--build-only", action="store_true")
    p.add_argument(
        "--dev-image",
        action="store_true",
        help="boot a busybox stand-in image instead of the apps' images",
    )
    p.add_argument("--kinds", default=",".join(KINDS), help="subset of " + ",".join(KINDS))
    p.add_argument("--no-write", action="store_true", help=f"do not write {OUT.relative_to(REPO)}")
    p.add_argument(
        "--out",
        type=Path,
        default=OUT,
        help=f"the page to write (default {OUT.relative_to(REPO)})",
    )
    args = p.parse_args(argv)
    groups = [g for g in args.apps.split(",") if g]
    kinds = [k for k in args.kinds.split(",") if k]
    bad = [g for g in groups if g not in GROUPS] + [k for k in kinds if k not in KINDS]
    if bad:
        p.error(f"unknown: {', '.join(bad)}")
    if args.timings is None and TIMINGS_JSON.exists():
        args.timings = str(TIMINGS_JSON)
    args.timings_data = (
        normalise_timings(json.loads(Path(args.timings).read_text())) if args.timings else None
    )
    t0 = time.monotonic()
    SCRATCH.mkdir(parents=True, exist_ok=True)

    machine, base_cmdline, machine_src, profiles = baseline_and_profiles(args.dev_image)
    debian = debian_kernel() if {"debian", "localmod"} & set(kinds) else None
    mods: Dict[str, Tuple[List[str], str]] = {a: traced_modules(a) for a in APPS}
    mods["all"] = (sorted({m for a in APPS for m in mods[a][0]}), "the union of the apps' lists")
    modules_src = "; ".join(f"{g}: {mods[g][1]}" for g in groups)

    kernels: Dict[Tuple[str, str], Kernel] = {}
    failures: List[str] = []
    for g in groups:
        for kind in ("tailored", "minimised"):
            if kind in kinds:
                kernels[(kind, g)] = tailored_kernel(g, kind)
        if "debian" in kinds:
            kernels[("debian", g)] = debian_as_kernel(g, debian, mods[g][0])
            if args.dev_image:  # the stand-in image carries no modules: the product's copy
                root = SCRATCH / "debian-modules" / g
                if not (root / MODULE_LIST).exists():
                    prebuilt.copy_modules(str(debian.image_deb), mods[g][0], str(root))
                kernels[("debian", g)].modules_root = root
    # builds: (b) first (the long one), then (c)
    if "localmod" in kinds:
        addresses, pants_log = localmod_build(groups, debian, mods)
        for g in groups:
            kernels[("localmod", g)] = localmod_kernel(g, addresses[g], pants_log, *mods[g])
    if "tiny" in kinds:
        log("./pants package benchmarks/distro:tiny-* (" + ", ".join(groups) + ")")
        pants_log = package(*(f"benchmarks/distro:tiny-{g}" for g in groups))
        for g in groups:
            kernels[("tiny", g)] = tiny_kernel(g, pants_log)
    for (kind, g), k in kernels.items():
        if k.missing:
            log(f"{KIND_LABELS[kind]} for {g}: MISSING: {k.missing}")
            if kind in ("localmod", "tiny"):
                failures.append(f"{kind} {g}: {k.missing}")
        elif kind == "tiny":
            same = [
                h
                for (kk, h), other in kernels.items()
                if kk == kind and h != g and not other.missing and other.config == k.config
            ]
            if same:
                k.notes.append(f"the same configuration as the tiny kernel of {', '.join(same)}")
    if args.build_only:
        for (kind, g), k in sorted(kernels.items()):
            if k.build and "seconds" in k.build:
                log(
                    f"{kind} {g}: {k.image} ({'cached' if k.build.get('warm') else 'built'}; "
                    f"{k.build['seconds']} s)"
                )
        return 1 if failures else 0

    sizes = {}
    for key, k in kernels.items():
        s = measure(k)
        if "missing" in s:
            s["missing_short"] = "missing"
        s["build"] = k.build if "seconds" in k.build else None
        sizes[key] = s

    cmdline = f"console=ttyS0 nokaslr {base_cmdline}".strip()
    cmdline = " ".join(dict.fromkeys(cmdline.split()))  # no duplicate words
    machine_desc = (
        f"{machine.machine}, {machine.cpus} CPU, {machine.memory}, devices "
        f"{', '.join(machine.devices) or 'none'}; cmdline `{cmdline}` "
        f"(machine from {machine_src})"
    )
    boots: Dict[Tuple[str, str], dict] = {}
    cache: Dict = {}
    for g in groups:
        images = app_images(g, args.dev_image)
        for kind in kinds:
            k = kernels.get((kind, g))
            if k is None or k.missing:
                continue
            boots[(kind, g)] = boot_kernel(k, images, args.boots, machine, cmdline, profiles, cache)
    text = render(
        args, groups, kernels, sizes, boots, machine_desc, modules_src, time.monotonic() - t0
    )
    missing = [
        f"- {KIND_LABELS[k]} {g}: {kern.missing}"
        for (k, g), kern in kernels.items()
        if kern.missing
    ]
    if missing:
        text += "\n## Missing\n\n" + "\n".join(missing) + "\n"
    print(text)
    if not args.no_write:
        args.out.write_text(text)
        log(f"wrote {args.out}")
    (SCRATCH / "last-run.json").write_text(
        json.dumps(
            {
                "sizes": {f"{k}/{g}": v for (k, g), v in sizes.items()},
                "boots": {f"{k}/{g}": v for (k, g), v in boots.items()},
            },
            indent=2,
            default=str,
        )
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
