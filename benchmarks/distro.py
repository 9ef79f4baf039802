#!/usr/bin/env python3
"""Tailored kernels against distribution kernels: Debian's cloud kernel, `localmodconfig` and a
hand-written tinyconfig, for the debian-cloud apps (nginx, redis, memcached) and all three.

For each app and for the combined kernel `all`, four kernels side by side:
- *tailored*: the kernel the pipeline builds, `dist/examples.debian-cloud/<app>-kernel/`
  (`all-kernel` for `all`), as `pants package examples/debian-cloud::` leaves it;
- *debian*: Debian's cloud kernel as shipped, the image package of third_party/debian/cloud-kernel.lock
  (vmlinuz, config, modules) and its `-dbg` package (the debug vmlinux, for `size`);
- *localmod*: `make localmodconfig` on Debian's cloud configuration with the modules the traced
  guest had loaded (its `KR_MODULE` console lines), built from the pinned source tarball;
- *tiny*: `make tinyconfig`, `make kvm_guest.config` and the hand-written fragments in
  benchmarks/distro/ (`base.config` plus the app's; `all` takes every app's), all built in.

Measured for each: enabled options (=y, =m), vmlinux text/data/bss (`size`) and code (the sum of
function symbol sizes, `nm -S`), compressed image bytes, installed module bytes, boot time to the
app being ready under QEMU TCG (host wall clock from QEMU's start to the console line
`KR_APP_READY`, median of --boots runs), guest memory in use after boot (`KR_MEMINFO`: MemTotal -
MemAvailable) and whether the workload passed (`KR_WORKLOAD_STATUS 0` and the app_profile's
`success` regex). Also the pipeline's own timings: compose.json and report.json of each tailored
kernel, and --timings FILE (default docs/benchmarks/distro-timings.json when it exists): a JSON
object {step: seconds} or {step: {group: seconds}} (group among nginx, redis, memcached, all), or
the JSON benchmarks/distro_timings.py writes; one table row per step. Prints a Markdown page and
writes docs/benchmarks.md.

The guests are the apps' traced images, `dist/examples.debian-cloud/<app>/initramfs.cpio.gz`
(they carry Debian's modules), on the machine of the `virtio` kernel_baseline in
examples/debian-cloud/BUILD. The localmodconfig kernel gets a second gzip cpio appended to the
image with its own modules and /etc/kernel_rules/modules (dependency order, from modules.dep).
The `all` kernels run every app's image.

Builds run under `nice -n 10`, `make -j2`, from the pinned source tarball (unpacked once under
the scratch directory, /var/tmp/distro-bench or $KR_DISTRO_SCRATCH). Each configuration's outputs
go to build/<kind>-<key>/, the key being the sha256 of everything that goes into it (source,
Debian's configuration, fragments, module list, compiler); a re-run with the same key skips the
build. Kbuild runs in one warm tree per kind (build/<kind>-tree), so a new configuration
recompiles only what changed. Debian's configuration is built with DEBUG_INFO off (and no BTF)
to keep the build fast; otherwise only the key files of Debian's own tree are dropped.

Usage:
  .venv/bin/python benchmarks/distro.py                 # everything (builds are cached)
  .venv/bin/python benchmarks/distro.py --build-only    # just build/refresh the scratch kernels
  .venv/bin/python benchmarks/distro.py --dev-image     # boot stand-in images (busybox + the
                                                        # host's nginx/redis/memcached)
  options: --apps nginx,redis,memcached,all  --kinds tailored,debian,localmod,tiny  --boots N
           --timings FILE  --no-write
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kernel_rules.domain.kconfig.fragments import parse_config  # noqa: E402
from kernel_rules.domain.guest.initramfs import (  # noqa: E402
    busybox_applets, busybox_initramfs, cpio_newc, directory, gzip_deterministic, regular,
    with_parent_dirs)
from kernel_rules.domain.build.kbuild import PINNED_ENV, make_argv  # noqa: E402
from kernel_rules.domain.guest.protocol import (
    OUTPUT_BEGIN, WorkloadReport, verdict, workload_report,
)
from kernel_rules.domain.guest.protocol import INIT_MARKER
from kernel_rules.domain.guest.qemu import BootSpec, Machine, command_line, watch_console
from kernel_rules.domain.compose.report import symbol_sizes  # noqa: E402
from kernel_rules.domain.build.warm_trees import (  # noqa: E402
    BUILDING, locked, repair_interrupted, unpack_source)

APPS = ("nginx", "redis", "memcached")
GROUPS = APPS + ("all",)
DIST = REPO / "dist/examples.debian-cloud"
HERE = REPO / "benchmarks/distro"
OUT = REPO / "docs/benchmarks.md"
SCRATCH = Path(os.environ.get("KR_DISTRO_SCRATCH", "/var/tmp/distro-bench"))
ARCH = "x86_64"
JOBS = 2

# The pinned cloud kernel (third_party/setup.sh --move-pins moves the lock).
_CLOUD_LOCK = dict(line.split("=", 1) for line in
                   (REPO / "third_party/debian/cloud-kernel.lock").read_text().splitlines()
                   if "=" in line and not line.startswith("#"))
DEBIAN_PACKAGE = _CLOUD_LOCK["image_package"][: -len("-unsigned")]
DEBIAN_VERSION = _CLOUD_LOCK["version"]
DEB_DIRS = (REPO / "third_party/debian/debs", Path("/var/cache/kr-debs"))
# What the baseline guest loads on Debian's cloud kernel (the `virtio` kernel_baseline's machine),
# used while no traced console log of an app exists.
DEFAULT_MODULES = ("virtio", "virtio_ring", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
                   "virtio_pci", "net_failover", "failover", "virtio_net", "virtio_blk",
                   "virtio_rng")
# Debian's configuration outside Debian's tree: no key files of Debian's, no debug info (speed).
# Module signing stays on (Kbuild makes a throw-away key), as Debian's modules are signed.
DEBIAN_FIXES = {
    "SYSTEM_TRUSTED_KEYS": '""', "SYSTEM_REVOCATION_KEYS": '""',
    "DEBUG_INFO_NONE": "y", "DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT": "n",
    "DEBUG_INFO_DWARF4": "n", "DEBUG_INFO_DWARF5": "n", "DEBUG_INFO_BTF": "n",
    "LOCALVERSION": '"-localmod"',
}
TINY_EXTRA = {"LOCALVERSION": '"-tiny"'}
# The machine if examples/debian-cloud/BUILD has no `virtio` kernel_baseline (yet).
DEFAULT_MACHINE = Machine("q35", 1, "1G", ("virtio-net-pci", "virtio-rng-pci"))
DEFAULT_CMDLINE = "console=ttyS0"
BASELINE_NAME = "virtio"

APP_READY = "KR_APP_READY"
WINDOW_REQUEST = "KR_WINDOW_REQUEST"
MEMINFO = re.compile(r"KR_MEMINFO (\d+) (\d+)")
STATUS = re.compile(r"KR_WORKLOAD_STATUS (\d+)")
UPTIME = re.compile(re.escape(INIT_MARKER) + r" kernel (\S+) uptime ([0-9.]+)")
MODULE_LINE = re.compile(r"^KR_MODULE (\S+)", re.M)
DONE = "KR_DONE"
KIND_LABELS = {"tailored": "tailored (t)", "debian": "Debian cloud (a)",
               "localmod": "localmodconfig (b)", "tiny": "tinyconfig + fragments (c)"}
KINDS = tuple(KIND_LABELS)


def log(msg: str) -> None:
    print(f"distro: {msg}", file=sys.stderr, flush=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_text(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()


def run(argv: Sequence[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=True, **kw)


def rel(p: Path) -> str:
    """`p` relative to the repository when it is inside it."""
    try:
        return str(p.relative_to(REPO))
    except ValueError:
        return str(p)


def enabled_counts(config: Dict[str, str]) -> Tuple[int, int]:
    return (sum(1 for v in config.values() if v == "y"), sum(1 for v in config.values() if v == "m"))


def size_of(vmlinux: Path) -> Tuple[int, int, int]:
    out = run(["size", str(vmlinux)], capture_output=True, text=True).stdout.splitlines()[1].split()
    return int(out[0]), int(out[1]), int(out[2])


def code_bytes(vmlinux: Path) -> int:
    nm = run(["nm", "-S", "--defined-only", str(vmlinux)], capture_output=True, text=True).stdout
    return symbol_sizes(nm)["code"]


def image_release(image: Path) -> str:
    """The kernel release string from a bzImage's setup header (kernel_version at 0x20E)."""
    data = image.read_bytes()[:0x10000]
    off = int.from_bytes(data[0x20E:0x210], "little") + 0x200
    return data[off:data.index(b"\0", off)].decode(errors="replace").split()[0]


# --------------------------------------------------------------------------------------------
# Inputs: source tarball, Debian packages, machine, module lists


def source_tree() -> Tuple[str, str]:
    lock = dict(line.split("=", 1) for line in
                (REPO / "third_party/linux/linux-source.lock").read_text().splitlines()
                if "=" in line and not line.startswith("#"))
    tarball = REPO / "third_party/linux" / Path(lock["path_in_package"]).name
    if not tarball.exists():
        sys.exit(f"distro: {tarball} is missing (./pants fetches it on first use)")
    stamp = SCRATCH / "sources" / f"{lock['sha256']}.verified"
    if not stamp.exists():
        got = sha256_file(tarball)
        if got != lock["sha256"]:
            sys.exit(f"distro: {tarball}: sha256 {got}, the lock says {lock['sha256']}")
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(f"{tarball}\n")
    return unpack_source(str(SCRATCH), str(tarball), lock["sha256"]), lock["sha256"]


@dataclass
class Debian:
    release: str
    version: str
    deb_dir: Path
    root: Path          # the unsigned package, extracted
    vmlinux: Path       # from the -dbg package
    config_text: str

    @property
    def vmlinuz(self) -> Path:
        return self.root / f"boot/vmlinuz-{self.release}"

    @property
    def modules_dir(self) -> Path:
        return self.root / f"lib/modules/{self.release}"


def debian_kernel() -> Debian:
    for d in DEB_DIRS:
        img = sorted(d.glob(f"{DEBIAN_PACKAGE}-unsigned_*_amd64.deb"))
        dbg = sorted(d.glob(f"{DEBIAN_PACKAGE}-dbg_*_amd64.deb"))
        if img and dbg:
            break
    else:
        sys.exit(f"distro: no {DEBIAN_PACKAGE}-unsigned and -dbg .debs in "
                 + " or ".join(str(d) for d in DEB_DIRS))
    img_deb, dbg_deb = img[-1], dbg[-1]
    version = run(["dpkg-deb", "-f", str(img_deb), "Version"], capture_output=True,
                  text=True).stdout.strip()
    if version != DEBIAN_VERSION:
        log(f"warning: {img_deb.name} is version {version}, this benchmark pins {DEBIAN_VERSION}")
    base = SCRATCH / "debian" / sha256_text(sha256_file(img_deb), sha256_file(dbg_deb))[:16]
    root, dbgroot = base / "img", base / "dbg"
    if not (base / ".complete").exists():
        log(f"extracting {img_deb.name} and the vmlinux of {dbg_deb.name} into {base}")
        shutil.rmtree(base, ignore_errors=True)
        root.mkdir(parents=True)
        dbgroot.mkdir()
        run(["dpkg-deb", "-x", str(img_deb), str(root)])
        release = next((root / "boot").glob("vmlinuz-*")).name[len("vmlinuz-"):]
        tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(dbg_deb)], stdout=subprocess.PIPE)
        run(["tar", "-x", "-C", str(dbgroot), f"./usr/lib/debug/boot/vmlinux-{release}"],
            stdin=tar.stdout)
        if tar.wait() != 0:
            sys.exit(f"distro: dpkg-deb --fsys-tarfile {dbg_deb} failed")
        # modules.dep for the stand-in image's module overlay (the package leaves it to depmod)
        run(["depmod", "-b", str(root), release])
        (base / ".complete").write_text(f"{img_deb}\n{dbg_deb}\n")
    release = next((root / "boot").glob("vmlinuz-*")).name[len("vmlinuz-"):]
    text = (root / f"boot/config-{release}").read_text()
    return Debian(release, version, img_deb.parent, root,
                  dbgroot / f"usr/lib/debug/boot/vmlinux-{release}", text)


BUILD_FILE = REPO / "examples/debian-cloud/BUILD"


def build_target(kind: str, name: str) -> Optional[Tuple[dict, int]]:
    """The literal fields and line of `kind(name=...)` in examples/debian-cloud/BUILD (read with
    `ast`; fields that are not literals are left out), None when there is none."""
    try:
        tree = ast.parse(BUILD_FILE.read_text())
    except (OSError, SyntaxError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == kind:
            kw = {}
            for k in node.keywords:
                try:
                    kw[k.arg] = ast.literal_eval(k.value)
                except ValueError:
                    pass
            if kw.get("name") == name:
                return kw, node.lineno
    return None


def baseline_machine() -> Tuple[Machine, str, str]:
    """(machine, extra cmdline, where it came from): the `virtio` kernel_baseline, else the
    default."""
    found = build_target("kernel_baseline", BASELINE_NAME)
    if not found:
        return DEFAULT_MACHINE, DEFAULT_CMDLINE, (f"default (no kernel_baseline {BASELINE_NAME!r} "
                                                  f"in {BUILD_FILE.relative_to(REPO)})")
    kw, line = found
    m = Machine(kw.get("machine", "q35"), int(kw.get("cpus", 1)), kw.get("memory", "256M"),
                tuple(kw.get("devices", ())))
    return m, kw.get("cmdline", DEFAULT_CMDLINE), f"{BUILD_FILE.relative_to(REPO)}:{line}"


def app_timeout(app: str, use_dev: bool) -> float:
    """The app_profile's `timeout` (seconds for the whole guest run), 900 when unknown."""
    found = None if use_dev else build_target("app_profile", app)
    return float(found[0].get("timeout", 900)) if found else 900.0


def app_success(app: str) -> Optional[str]:
    """The app_profile's `success` regex (None: exit status only)."""
    found = build_target("app_profile", app)
    return found[0].get("success") if found else None


def traced_modules(app: str, debian: Debian) -> Tuple[List[str], str]:
    """The modules loaded in the app's traced guest (its console's KR_MODULE lines), checked
    against Debian's modules.order; the default list while there is no traced console."""
    console = DIST / app / "console.log"
    names: List[str] = []
    source = f"{console.relative_to(REPO)}"
    if console.exists():
        names = MODULE_LINE.findall(console.read_text(errors="replace"))
    if not names:
        names, source = list(DEFAULT_MODULES), "default list (no traced console yet)"
    known = {Path(line).name[:-3].replace("-", "_")
             for line in (debian.modules_dir / "modules.order").read_text().split()}
    unknown = [n for n in names if n.replace("-", "_") not in known]
    if unknown:
        log(f"warning: {app}: modules not in Debian's modules.order: {', '.join(unknown)}")
    return sorted({n.replace("-", "_") for n in names}), source


# --------------------------------------------------------------------------------------------
# Builds in keyed scratch trees


@dataclass
class Kernel:
    kind: str
    group: str
    name: str
    image: Optional[Path] = None
    vmlinux: Optional[Path] = None
    config: Dict[str, str] = field(default_factory=dict)
    modules_dir: Optional[Path] = None  # lib/modules/<release>/ (None: no modules)
    release: str = ""
    build: dict = field(default_factory=dict)   # {"seconds", "configure_seconds", "warm", ...}
    missing: str = ""                           # why the kernel is not there
    notes: List[str] = field(default_factory=list)
    boot_modules: List[str] = field(default_factory=list)  # modules to load (overlay), by name


def compiler_id() -> str:
    return run(["gcc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]


def set_values(config_path: Path, values: Dict[str, str]) -> None:
    """Replace (or add) the lines of `values` in a .config, as merge_config.sh does."""
    names = {f"CONFIG_{s}" for s in values}
    kept = [line for line in config_path.read_text().splitlines()
            if line.split("=", 1)[0] not in names
            and not (line.startswith("# CONFIG_") and line.split()[1] in names)]
    kept += [f"# CONFIG_{s} is not set" if v == "n" else f"CONFIG_{s}={v}"
             for s, v in values.items()]
    config_path.write_text("\n".join(kept) + "\n")


def make(src: str, tree: Path, *targets: str, logfile: Path, extra: Sequence[str] = ()) -> None:
    argv = ["nice", "-n", "10", *make_argv(src, str(tree), ARCH, JOBS, targets), *extra]
    with open(logfile, "a") as f:
        f.write(f"$ {' '.join(argv)}\n")
        f.flush()
        done = subprocess.run(argv, env={**os.environ, **PINNED_ENV}, stdout=f,
                              stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-40:])
        raise RuntimeError(f"make {' '.join(targets)} failed in {tree} (log {logfile}):\n{tail}")


def dropped_values(requested: Dict[str, str], final: Dict[str, str]) -> List[str]:
    """Requested values the final .config does not have (an absent string symbol is empty:
    SYSTEM_REVOCATION_KEYS="" needs no change when SYSTEM_REVOCATION_LIST is off)."""
    def got(s: str, v: str) -> str:
        return final.get(s, '""' if v == '""' else "n")
    return [f"{s}={v} (got {got(s, v)})" for s, v in requested.items() if got(s, v) != v]


COMPILED = re.compile(r"^\s+(?:CC|AS)(?: \[M\])?\s+\S+\.o\s*$", re.M)


def build_tree(kind: str, key: str, src: str, configure, modules: bool) -> Tuple[Path, dict]:
    """Build one configuration of `kind` and keep its outputs in SCRATCH/build/<kind>-<key[:16]>/
    (bzImage, vmlinux, config, modroot/, build.json, build.log); a finished one is reused as it
    is. Kbuild runs in the kind's warm tree SCRATCH/build/<kind>-tree (one per kind, locked while
    in use), so a changed configuration recompiles only what the change touches."""
    out = SCRATCH / "build" / f"{kind}-{key[:16]}"
    if (out / "build.json").exists():
        info = json.loads((out / "build.json").read_text())
        info["warm"] = True
        return out, info
    tree = SCRATCH / "build" / f"{kind}-tree"
    tree.mkdir(parents=True, exist_ok=True)
    with locked(str(tree) + ".lock"):
        if (out / "build.json").exists():   # another run built it while we waited
            return build_tree(kind, key, src, configure, modules)
        repair_interrupted(str(tree))   # a killed earlier run: drop what it half wrote
        last = tree / ".distro-last-key"
        previous = last.read_text().strip() if last.exists() else None
        logfile = SCRATCH / "build" / f"{kind}-{key[:16]}.log"
        logfile.write_text("")
        log(f"{kind}: configuring in {tree} ({'incremental after ' + previous[:16] if previous else 'cold'})")
        t0 = time.monotonic()
        requested = configure(tree, logfile)
        t1 = time.monotonic()
        (tree / BUILDING).write_text("interrupted builds leave this file behind\n")
        last.unlink(missing_ok=True)
        targets = ["bzImage", "modules"] if modules else ["bzImage"]
        log(f"{kind}: make {' '.join(targets)} (nice -n 10, -j{JOBS}; log {logfile})")
        make(src, tree, *targets, logfile=logfile)
        tmp = SCRATCH / "build" / f".{kind}-{key[:16]}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        if modules:
            make(src, tree, "modules_install", logfile=logfile,
                 extra=[f"INSTALL_MOD_PATH={tmp / 'modroot'}", "INSTALL_MOD_STRIP=1"])
        t2 = time.monotonic()
        (tree / BUILDING).unlink()
        last.write_text(key + "\n")
        for name, dest in (("arch/x86/boot/bzImage", "bzImage"), ("vmlinux", "vmlinux"),
                           (".config", "config")):
            shutil.copy2(tree / name, tmp / dest)
    final = parse_config((tmp / "config").read_text())
    info = {"key": key, "configure_seconds": round(t1 - t0, 1), "seconds": round(t2 - t1, 1),
            "compiled": len(COMPILED.findall(logfile.read_text(errors="replace"))),
            "cold": previous is None, "after": previous,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "dropped": dropped_values(requested, final), "warm": False}
    (tmp / "build.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    shutil.move(str(logfile), str(tmp / "build.log"))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    log(f"{kind}: built in {t2 - t1:.0f} s (+{t1 - t0:.0f} s configure), "
        f"{info['compiled']} objects compiled ({'cold' if previous is None else 'incremental'})")
    return out, info


def kernel_from_tree(kernel: Kernel, out: Path, info: dict,
                     requested: Dict[str, str]) -> Kernel:
    kernel.image = out / "bzImage"
    kernel.vmlinux = out / "vmlinux"
    kernel.config = parse_config((out / "config").read_text())
    kernel.release = image_release(kernel.image)
    mods = out / "modroot/lib/modules" / kernel.release
    kernel.modules_dir = mods if mods.is_dir() else None
    kernel.build = info
    dropped = dropped_values(requested, kernel.config)
    if dropped:
        kernel.notes.append("requested values olddefconfig did not keep: " + ", ".join(dropped))
    return kernel


def localmod_kernel(group: str, src: str, src_sha: str, debian: Debian,
                    modules: List[str], modules_source: str) -> Kernel:
    lsmod = "Module                  Size  Used by\n" + "".join(f"{m} 0 0\n" for m in modules)
    key = sha256_text("localmod@1", src_sha, debian.config_text, lsmod,
                      json.dumps(DEBIAN_FIXES, sort_keys=True), compiler_id())

    def configure(tree: Path, logfile: Path) -> Dict[str, str]:
        (tree / ".config").write_text(debian.config_text)
        (tree / "lsmod.txt").write_text(lsmod)
        make(src, tree, "localmodconfig", logfile=logfile, extra=[f"LSMOD={tree / 'lsmod.txt'}"])
        set_values(tree / ".config", DEBIAN_FIXES)
        make(src, tree, "olddefconfig", logfile=logfile)
        return dict(DEBIAN_FIXES)

    tree, info = build_tree("localmod", key, src, configure, modules=True)
    k = kernel_from_tree(Kernel("localmod", group, f"localmod-{key[:8]}"), tree, info,
                         DEBIAN_FIXES)
    k.boot_modules = list(modules)
    k.notes.append(f"modules from {modules_source}: {', '.join(modules)}")
    off = [m for m in modules if not k.modules_dir or not module_paths(k.modules_dir, [m])]
    if off:
        k.notes.append(f"not built as modules here (built in or dropped): {', '.join(off)}")
    return k


def tiny_fragments(group: str) -> List[Path]:
    apps = APPS if group == "all" else (group,)
    return [HERE / "base.config", *(HERE / f"{a}.config" for a in apps)]


def tiny_kernel(group: str, src: str, src_sha: str) -> Kernel:
    frags = tiny_fragments(group)
    missing = [rel(f) for f in frags if not f.exists()]
    if missing:
        return Kernel("tiny", group, f"tiny-{group}", missing="missing " + ", ".join(missing))
    texts = [(rel(f), f.read_text()) for f in frags]
    requested: Dict[str, str] = {}
    for name, text in texts:
        requested.update(parse_config(text, name))
    requested.update(TINY_EXTRA)
    # keyed on the merged values asked for (comments and fragment names do not matter)
    key = sha256_text("tiny@2", src_sha, json.dumps(sorted(requested.items())), compiler_id())

    def configure(tree: Path, logfile: Path) -> Dict[str, str]:
        make(src, tree, "tinyconfig", logfile=logfile)
        make(src, tree, "kvm_guest.config", logfile=logfile)
        set_values(tree / ".config", requested)
        make(src, tree, "olddefconfig", logfile=logfile)
        return requested

    tree, info = build_tree("tiny", key, src, configure, modules=False)
    k = kernel_from_tree(Kernel("tiny", group, f"tiny-{group}-{key[:8]}"), tree, info, requested)
    k.notes.append("fragments: " + ", ".join(n for n, _ in texts))
    return k


def tailored_kernel(group: str) -> Kernel:
    d = DIST / f"{group}-kernel"
    k = Kernel("tailored", group, f"{group}-kernel")
    need = [d / n for n in ("bzImage", "vmlinux", "config")]
    absent = [p.name for p in need if not p.exists()]
    if absent:
        k.missing = (f"{d.relative_to(REPO)}/ has no {', '.join(absent)} "
                     "(run `./pants package examples/debian-cloud::`)")
        return k
    k.image, k.vmlinux = d / "bzImage", d / "vmlinux"
    k.config = parse_config((d / "config").read_text())
    k.release = image_release(k.image)
    for name in ("report.json", "compose.json"):
        if (d / name).exists():
            k.build[name] = json.loads((d / name).read_text())
    if k.config.get("MODULES") == "y" and any(v == "m" for v in k.config.values()):
        mods = d / "modules" / "lib/modules" / k.release
        k.modules_dir = mods if mods.is_dir() else None
        if not k.modules_dir:
            k.notes.append("has =m options but no installed modules in its dist directory")
    return k


def debian_as_kernel(group: str, debian: Debian, modules: List[str]) -> Kernel:
    k = Kernel("debian", group, f"debian-{debian.release}", image=debian.vmlinuz,
               vmlinux=debian.vmlinux, config=parse_config(debian.config_text),
               modules_dir=debian.modules_dir, release=debian.release)
    k.boot_modules = list(modules)
    k.notes.append(f"{DEBIAN_PACKAGE}-unsigned {debian.version} (+ -dbg for vmlinux), "
                   f"from {debian.deb_dir}")
    return k


# --------------------------------------------------------------------------------------------
# Guest images and boots


def module_paths(modules_dir: Path, names: Sequence[str]) -> List[str]:
    """Paths (relative to modules_dir) of `names` and everything they depend on, dependencies
    first (from modules.dep)."""
    dep_file = modules_dir / "modules.dep"
    if not dep_file.exists():
        return []
    deps: Dict[str, List[str]] = {}
    by_name: Dict[str, str] = {}
    for line in dep_file.read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
        by_name[Path(path).name.split(".ko")[0].replace("-", "_")] = path
    order: List[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for d in deps.get(path, []):
            visit(d)
        order.append(path)

    for n in names:
        if n in by_name:
            visit(by_name[n])
    return order


def module_overlay(kernel: Kernel) -> Optional[bytes]:
    """A gzip cpio with the kernel's modules for the guest's loaded list and an
    /etc/kernel_rules/modules listing them in dependency order (appended to the app image)."""
    if not kernel.modules_dir or not kernel.boot_modules:
        return None
    paths = module_paths(kernel.modules_dir, kernel.boot_modules)
    base = f"lib/modules/{kernel.release}"
    entries = [regular(f"{base}/{p}", (kernel.modules_dir / p).read_bytes()) for p in paths]
    entries.append(regular("etc/kernel_rules/modules", "".join(p + "\n" for p in paths).encode()))
    return gzip_deterministic(cpio_newc(with_parent_dirs(entries)))


DEV_INIT = r"""#!/bin/sh
# Stand-in for an app image (benchmarks/distro.py --dev-image): the same console protocol.
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
mkdir -p /dev/pts /dev/shm /run /var/tmp /var/log
mount -t devpts devpts /dev/pts 2>/dev/null
mod=/lib/modules/$(uname -r)
if [ -d "$mod" ] && [ -f /etc/kernel_rules/modules ]; then
  while read -r m; do insmod "$mod/$m" || echo "kr: insmod $m failed"; done < /etc/kernel_rules/modules
fi
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
echo "KERNEL_RULES_INIT_OK kernel $(uname -r) uptime $(cut -d' ' -f1 /proc/uptime)"
echo "KR_MEMINFO $(awk '/^MemTotal:/{t=$2} /^MemAvailable:/{a=$2} END{print t, a}' /proc/meminfo)"
quiet=0; last=""; i=0
while [ $quiet -lt 3 ] && [ $i -lt 30 ]; do
  now=$(dmesg 2>/dev/null | wc -l)
  if [ "$now" = "$last" ]; then quiet=$((quiet + 1)); else quiet=0; fi
  last=$now; i=$((i + 1)); sleep 0.2
done
echo KR_WINDOW_REQUEST
read -r ack
cd /app
/bin/sh /app/workload.sh
echo "KR_WORKLOAD_STATUS $?"
sed 's/^/KR_MODULE /' /proc/modules 2>/dev/null
echo KR_DONE
reboot -f
"""
# wait_for CMD: retry CMD for up to 20 s, then print KR_APP_READY (the app serves)
_WAIT = r"""wait_for() { i=0; until "$@" >/dev/null 2>&1; do i=$((i + 1)); [ $i -ge 200 ] && return 1; sleep 0.1; done; echo KR_APP_READY; }
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
                            "[ \"$(redis-cli get kr)\" = redis-ok ]\n",
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
DEV_ETC = {"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/false\n"
                         "nobody:x:65534:65534::/nonexistent:/bin/false\n",
           "etc/group": "root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n"}


def dev_image(app: str) -> Path:
    """A stand-in for the app's image: busybox, the app's Debian binaries (with their shared
    libraries) and a small workload, with the same console protocol as the real image."""
    from kernel_rules.domain.guest.elfdeps import closure
    from kernel_rules.domain.guest.initramfs import host_file_entries

    spec = DEV_APPS[app]
    files = {**DEV_ETC, **spec["files"], "app/workload.sh": spec["workload"]}
    extra = host_file_entries(closure(spec["binaries"]))
    extra += [regular(p, t.encode()) for p, t in files.items()]
    extra += [directory(d) for d in ("lib", "run", "var", "var/log")]
    data = Path("/usr/bin/busybox").read_bytes()
    entries = busybox_initramfs(data, busybox_applets("/usr/bin/busybox"), DEV_INIT.encode(),
                                with_parent_dirs(extra))
    have = set()
    unique = []
    for e in entries:   # busybox_initramfs's dirs and with_parent_dirs may overlap
        if e.path.strip("/") not in have:
            have.add(e.path.strip("/"))
            unique.append(e)
    blob = gzip_deterministic(cpio_newc(unique))
    out = SCRATCH / "images" / f"dev-{app}.cpio.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.exists() or out.read_bytes() != blob:
        out.write_bytes(blob)
    return out


def app_images(group: str, use_dev: bool) -> List[Tuple[str, Optional[Path]]]:
    """(app, image) pairs to boot for a group; image None when the app's image is missing."""
    if use_dev:
        return [(a, dev_image(a)) for a in (APPS if group == "all" else (group,))]
    if group == "all":
        combined = DIST / "all" / "initramfs.cpio.gz"
        if combined.exists():
            return [("all", combined)]
        return [(a, DIST / a / "initramfs.cpio.gz") if (DIST / a / "initramfs.cpio.gz").exists()
                else (a, None) for a in APPS]
    p = DIST / group / "initramfs.cpio.gz"
    return [(group, p if p.exists() else None)]


def image_for(kernel: Kernel, app: str, image: Path, use_dev: bool) -> Path:
    """The image to boot: the app's, plus a module overlay for kernels whose modules the app
    image does not carry (localmod; Debian's too when booting the stand-in image)."""
    if kernel.kind == "localmod" or (kernel.kind == "debian" and use_dev):
        overlay = module_overlay(kernel)
        if overlay:
            base = image.read_bytes()
            blob = base + b"\0" * ((4 - len(base) % 4) % 4) + overlay
            key = hashlib.sha256(blob).hexdigest()[:16]
            out = SCRATCH / "images" / f"{app}-{kernel.release}-{key}.cpio.gz"
            out.parent.mkdir(parents=True, exist_ok=True)
            if not out.exists():
                out.write_bytes(blob)
            return out
    return image


def _host_busy_seconds() -> float:
    """CPU seconds the whole host has been busy (all CPUs), from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:9]]
    return (sum(vals) - vals[3] - vals[4]) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _report(console: str, status: Optional["re.Match"]) -> WorkloadReport:
    """The workload's report: framed by an app_profile image's init (domain.guest.init); the
    development images' init prints the workload's output and status on the console as they
    are, so there the console stands for the output."""
    if OUTPUT_BEGIN in console:
        return workload_report(console)
    return WorkloadReport(int(status.group(1)) if status else None, console.encode())


def boot_once(kernel: Kernel, initrd: Path, machine: Machine, cmdline: str, timeout: float,
              console_path: Path, success: Optional[str]) -> dict:
    spec = BootSpec("qemu-system-x86_64", str(kernel.image), str(initrd), cmdline, machine, "tcg")
    marks: Dict[str, float] = {}
    scanned = [0]
    answered: List[bool] = []
    start = time.monotonic()

    console_path.parent.mkdir(parents=True, exist_ok=True)
    live = open(console_path, "wb")   # written as it comes, to follow a hung guest

    def on_output(buf: bytes, proc: subprocess.Popen) -> Optional[float]:
        now = time.monotonic() - start
        window = buf[max(0, scanned[0] - 64):]
        live.write(buf[scanned[0]:])
        live.flush()
        scanned[0] = len(buf)
        for name in (INIT_MARKER, "KR_MEMINFO", WINDOW_REQUEST, APP_READY, "KR_WORKLOAD_STATUS",
                     DONE):
            if name not in marks and name.encode() in window:
                marks[name] = round(now, 2)
        if WINDOW_REQUEST in marks and not answered:
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
            answered.append(True)
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
    mem = MEMINFO.search(console)
    status = STATUS.search(console)
    up = UPTIME.search(console)
    return {
        "init_s": marks.get(INIT_MARKER), "ready_s": marks.get(APP_READY),
        "uptime_init": float(up.group(2)) if up else None,
        "mem_total_kb": int(mem.group(1)) if mem else None,
        "mem_used_kb": int(mem.group(1)) - int(mem.group(2)) if mem else None,
        "status": int(status.group(1)) if status else None, "timed_out": timed_out,
        "verdict": (f"no {DONE} within {timeout:.0f} s" if timed_out and not status
                    else verdict(_report(console, status), success)),
        "modules": MODULE_LINE.findall(console), "load": round(load, 2),
        "other_cpu": round(other, 2), "console": str(console_path),
    }


def boot_kernel(kernel: Kernel, images: List[Tuple[str, Optional[Path]]], boots: int,
                machine: Machine, cmdline: str, use_dev: bool, cache: Dict) -> dict:
    """Boot `kernel` `boots` times with each image; results summarised over all runs."""
    runs: List[dict] = []
    missing = [app for app, img in images if img is None]
    for app, img in images:
        if img is None:
            continue
        initrd = image_for(kernel, app, img, use_dev)
        ck = (str(kernel.image), str(initrd))
        if ck not in cache:
            got = []
            for i in range(boots):
                r = boot_once(kernel, initrd, machine, cmdline, app_timeout(app, use_dev),
                              SCRATCH / "consoles" / f"{kernel.name}-{app}-{i + 1}.log",
                              None if use_dev else app_success(app))
                r["app"] = app
                log(f"boot {kernel.name} with {app} #{i + 1}: ready {r['ready_s']} s, "
                    f"status {r['status']} {r['verdict'] or 'passed'}, in use "
                    f"{r['mem_used_kb']} kB, other CPU {r['other_cpu']}")
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
        "runs": len(runs), "passed": passed, "missing_images": missing,
        "ready_median": statistics.median(ready) if len(ready) == len(runs) and runs else None,
        "ready_range": (min(ready), max(ready)) if ready else None,
        "init_median": statistics.median(init) if init else None,
        "uptime_median": statistics.median(uptime) if uptime else None,
        "mem_used_median_kb": statistics.median(used) if used else None,
        "mem_total_kb": runs[0]["mem_total_kb"] if runs else None,
        "load_max": max((r["load"] for r in runs), default=None),
        "other_cpu": [r["other_cpu"] for r in runs],
        "failed": [f"{r['app']}: {r['verdict']}, console `{r['console']}`"
                   for r in runs if r["verdict"]],
        "modules_loaded": sorted({m for r in runs for m in r["modules"]}),
    }


# --------------------------------------------------------------------------------------------
# Measurements and the page


def modules_bytes(kernel: Kernel) -> Tuple[Optional[int], int]:
    """(sum of .ko bytes installed, count); (0, 0) for a kernel without modules."""
    if kernel.config.get("MODULES") != "y" or not any(v == "m" for v in kernel.config.values()):
        return 0, 0
    if not kernel.modules_dir:
        return None, 0
    kos = [p for p in kernel.modules_dir.rglob("*.ko*") if p.is_file()]
    return sum(p.stat().st_size for p in kos), len(kos)


def measure(kernel: Kernel) -> dict:
    if kernel.missing:
        return {"missing": kernel.missing}
    y, m = enabled_counts(kernel.config)
    text, data, bss = size_of(kernel.vmlinux)
    mod_bytes, mod_count = modules_bytes(kernel)
    return {"y": y, "m": m, "text": text, "data": data, "bss": bss,
            "code": code_bytes(kernel.vmlinux), "image": kernel.image.stat().st_size,
            "modules_bytes": mod_bytes, "modules": mod_count, "release": kernel.release}


def fmt_int(v) -> str:
    return "-" if v is None else f"{v:,}"


def pct(a, b) -> str:
    return "-" if a is None or not b else f"{100.0 * a / b:.1f}%"


def machine_info() -> List[str]:
    qemu = run(["qemu-system-x86_64", "--version"], capture_output=True,
               text=True).stdout.splitlines()[0]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) for line in open("/proc/meminfo")
               if line.startswith("MemTotal"))
    return [f"{os.cpu_count()} CPUs (`nproc`), {cpu}, {mem // 1024 // 1024} GiB RAM",
            f"{platform.platform()}; {qemu}; {compiler_id()}",
            f"/dev/kvm: {'present (not used)' if os.path.exists('/dev/kvm') else 'absent'}; "
            "every boot uses TCG"]


TIMINGS_JSON = REPO / "docs/benchmarks/distro-timings.json"


def normalise_timings(data: dict) -> dict:
    """{step: value | {group: value}} from --timings: either that already, or the JSON of
    benchmarks/distro_timings.py (its `steps`, and its `full_builds` of the tailored kernels;
    the rest is on the section that script appends to the page)."""
    if not any(k in data for k in ("steps", "builds", "full_builds")):
        return data
    rows: dict = dict(data.get("steps", {}))
    for kernel, b in sorted(data.get("full_builds", {}).items()):
        group = kernel[:-len("-kernel")] if kernel.endswith("-kernel") else kernel
        rows.setdefault("full (cold) build of the tailored kernel (Kbuild)", {})[group] = (
            f"{b.get('seconds')} ({b.get('compiled')}/{b.get('objects')} objects)")
    return rows


def timings_section(kernels: Dict[Tuple[str, str], Kernel], groups: Sequence[str],
                    extra: Optional[dict]) -> List[str]:
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
                f"{b['seconds']} ({b.get('compiled')}/{b.get('objects')} objects)")
        for r in rep.get("app_results", []):
            rows.setdefault(f"app check {r.get('name')}: whole run", {})[g] = r.get("seconds")
    for step, val in (extra or {}).items():
        if isinstance(val, dict):
            for g, sec in val.items():
                rows.setdefault(step, {})[g] = sec
        else:
            rows.setdefault(step, {})["(not per kernel)"] = val
    cols = list(groups) + (["(not per kernel)"] if any("(not per kernel)" in v for v in rows.values()) else [])
    if not rows:
        return ["No pipeline timings yet: no compose.json/report.json under "
                f"`{DIST.relative_to(REPO)}/*-kernel/` and no `--timings FILE`."]
    out = ["| step (seconds) | " + " | ".join(cols) + " |",
           "|---|" + "---:|" * len(cols)]
    for step, vals in rows.items():
        out.append(f"| {step} | " + " | ".join(str(vals.get(c, "-")) for c in cols) + " |")
    return out


def render(args, groups, kernels, sizes, boots, machine_desc, modules_src, elapsed) -> str:
    cmd = ".venv/bin/python benchmarks/distro.py" + "".join(
        f" {a}" for a in sys.argv[1:])
    lines = [
        "# Tailored kernels against distribution kernels (debian-cloud apps)", "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M %Z')} by `{cmd}` ({elapsed:.0f} s this run; "
        "kernel builds are cached in keyed scratch trees under "
        f"`{SCRATCH}/build/`).", "",
        *(f"- {line}" for line in machine_info()),
        f"- guest: {machine_desc}; {args.boots} boots per kernel and image", "",
    ]
    if args.dev_image:
        lines += ["**Stand-in images:** these numbers come from `--dev-image` (busybox, the "
                  "host's nginx/redis-server/memcached and a few requests each), not from the "
                  "apps' traced images. They prove the build/boot/measure machinery only.", ""]
    lines += [
        "Kernels:",
        f"- **{KIND_LABELS['tailored']}**: `dist/examples.debian-cloud/<app>-kernel/` from the "
        "pipeline (trace, map, compose, build).",
        f"- **{KIND_LABELS['debian']}**: `{DEBIAN_PACKAGE}-unsigned` {DEBIAN_VERSION} as "
        "shipped (vmlinuz, config, modules; vmlinux from the `-dbg` package).",
        f"- **{KIND_LABELS['localmod']}**: `make localmodconfig` on Debian's cloud configuration "
        "with the modules the traced guest loaded, built from the pinned 6.1.192 source. "
        "Changed from Debian's configuration: " + ", ".join(
            f"`{k}={v}`" for k, v in DEBIAN_FIXES.items()) + " (debug info and BTF off only "
        "to keep the build fast: they do not change text/data/bss or the compressed image, "
        "but the modules would be larger with them, before stripping). Modules installed "
        "with `INSTALL_MOD_STRIP=1` and signed with a Kbuild-generated key, as Debian's are "
        "stripped and signed.",
        f"- **{KIND_LABELS['tiny']}**: `make tinyconfig`, `make kvm_guest.config`, then "
        "`benchmarks/distro/base.config` and the app's fragment (`all`: every app's), "
        "`olddefconfig`; everything built in.", "",
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
        "another configuration of the same kind), under whatever else ran.", "",
    ]
    goals: List[str] = []
    for g in groups:
        lines += [f"## {g}", ""]
        present = [k for k in KINDS if (k, g) in kernels]
        lines += ["| | " + " | ".join(KIND_LABELS[k] for k in present) + " |",
                  "|---|" + "---:|" * len(present)]

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
        row("modules bytes (count)", lambda k, s: (
            "n/a" if s["modules_bytes"] is None else f"{fmt_int(s['modules_bytes'])} "
            f"({s['modules']})"))

        def bootcell(key, fmt):
            def f(k, s):
                b = boots.get((k, g))
                if not b:
                    return "not booted"
                if not b["runs"]:
                    return "no image"
                return fmt(b)
            return f

        row("boot to ready, s (TCG)", bootcell("ready", lambda b: (
            f"{b['ready_median']:.2f} [{b['ready_range'][0]:.2f}-{b['ready_range'][1]:.2f}]"
            if b["ready_median"] is not None else "never ready")))
        row("boot to init marker, s", bootcell("init", lambda b: (
            f"{b['init_median']:.2f}" if b["init_median"] is not None else "-")))
        row("guest uptime at init, s", bootcell("uptime", lambda b: (
            f"{b['uptime_median']:.2f}" if b["uptime_median"] is not None else "-")))
        row("other host CPU during boots", bootcell("other", lambda b: (
            f"{statistics.median(b['other_cpu']):.2f}" if b["other_cpu"] else "-")))
        row("memory in use after boot, MiB", bootcell("mem", lambda b: (
            f"{b['mem_used_median_kb'] / 1024:.1f}" if b["mem_used_median_kb"] is not None
            else "-")))
        row("workload passed", bootcell("pass", lambda b: (
            f"{'yes' if b['passed'] == b['runs'] else 'NO'} ({b['passed']}/{b['runs']})"
            + (f"; no image: {', '.join(b['missing_images'])}" if b["missing_images"] else ""))))
        row("build, s: configure + make (objects compiled)", lambda k, s: (
            f"{s['build']['configure_seconds']} + {s['build']['seconds']} "
            f"({s['build'].get('compiled', '?')}, "
            f"{'cold' if s['build'].get('cold') else 'incremental'}"
            + (", cached" if s["build"].get("warm") else "") + ")" if s.get("build") else "-"))
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
            return ", ".join(f"{k} {fn(k):.1%}" for k in ("localmod", "tiny")
                             if fn(k) is not None) or "-"

        r = text_ratio("tailored")
        t = sizes.get(("tailored", g), {})
        goals.append(f"| {g} | vmlinux text (`size`), tailored / Debian <= 25% | "
                     + (f"{r:.1%} ({t['text']:,} / {a['text']:,}) | "
                        f"{'met' if r <= 0.25 else 'NOT met'}" if r is not None
                        else "- | unknown (kernel missing)")
                     + f" | {others(text_ratio)} |")
        r = boot_ratio("tailored")
        bt = boots.get(("tailored", g)) or {}
        goals.append(f"| {g} | boot to ready, tailored / Debian <= 50% | "
                     + (f"{r:.1%} ({bt['ready_median']:.2f} s / {ba['ready_median']:.2f} s) | "
                        f"{'met' if r <= 0.5 else 'NOT met'}" if r is not None
                        else "- | unknown (no boot measurement)")
                     + f" | {others(boot_ratio)} |")
    lines += ["## Goals", "", "| kernel | goal | tailored | | for comparison: (b), (c) / Debian |",
              "|---|---|---:|---|---|", *goals, ""]
    if args.dev_image:
        lines += ["(Boot goals above are measured with the stand-in image, not the apps.)", ""]
    lines += ["## Pipeline timings", "",
              "From each tailored kernel's compose.json and report.json (the build that "
              "produced it: incremental when its warm tree held a similar configuration)"
              + (f" and `{rel(Path(args.timings))}`" if args.timings else "") + ".", "",
              *timings_section(kernels, groups, args.timings_data), ""]
    if any(k == "tiny" for k, _ in kernels):
        lines += ["## The hand-written fragments of (c)", "",
                  "Applied in this order after `make tinyconfig` and `make kvm_guest.config`; "
                  "the comments say what each option was found to be needed for.", ""]
        frags = sorted({f for g in groups for f in tiny_fragments(g)}, key=lambda f: (
            f.name != "base.config", f.name))
        for f in frags:
            body = f.read_text().rstrip("\n") if f.exists() else "(missing)"
            lines += [f"`{rel(f)}`:", "", "```", body, "```", ""]
    loads = [b["load_max"] for b in boots.values() if b and b.get("load_max") is not None]
    other = sorted(c for b in boots.values() if b for c in b.get("other_cpu", []))
    if other:
        lines += [f"Host CPU used by other processes during the boots (a TCG guest uses one of "
                  f"the {os.cpu_count()} CPUs itself): median {statistics.median(other):.2f}, "
                  f"max {other[-1]:.2f} CPUs; 1-minute load average at boot start at most "
                  f"{max(loads):.2f}. Values near {os.cpu_count() - 1} or more mean the "
                  "guests competed for CPU and boot times are inflated.", ""]
    lines += [f"Module lists for localmodconfig: {modules_src}.", "",
              "Re-run: `.venv/bin/python benchmarks/distro.py` from the repository root "
              f"(scratch: `{SCRATCH}`, `KR_DISTRO_SCRATCH` to move it; builds are reused while "
              "their inputs are unchanged).", ""]
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="distro", description=__doc__.splitlines()[0])
    p.add_argument("--apps", default=",".join(GROUPS),
                   help="comma-separated groups among nginx,redis,memcached,all")
    p.add_argument("--boots", type=int, default=3)
    p.add_argument("--timings", help="JSON {step: seconds | {group: seconds}}, or the JSON of "
                   "benchmarks/distro_timings.py, to add to the timings table (default: "
                   f"{TIMINGS_JSON.relative_to(REPO)} when it exists)")
    p.add_argument("--build-only", action="store_true")
    p.add_argument("--dev-image", action="store_true",
                   help="boot a busybox stand-in image instead of the apps' images")
    p.add_argument("--kinds", default=",".join(KINDS), help="subset of " + ",".join(KINDS))
    p.add_argument("--no-write", action="store_true", help=f"do not write {OUT.relative_to(REPO)}")
    args = p.parse_args(argv)
    groups = [g for g in args.apps.split(",") if g]
    kinds = [k for k in args.kinds.split(",") if k]
    bad = [g for g in groups if g not in GROUPS] + [k for k in kinds if k not in KINDS]
    if bad:
        p.error(f"unknown: {', '.join(bad)}")
    if args.timings is None and TIMINGS_JSON.exists():
        args.timings = str(TIMINGS_JSON)
    args.timings_data = (normalise_timings(json.loads(Path(args.timings).read_text()))
                         if args.timings else None)
    t0 = time.monotonic()
    SCRATCH.mkdir(parents=True, exist_ok=True)

    debian = debian_kernel()
    src, src_sha = source_tree()
    mods: Dict[str, Tuple[List[str], str]] = {a: traced_modules(a, debian) for a in APPS}
    mods["all"] = (sorted({m for a in APPS for m in mods[a][0]}),
                   "the union of the apps' lists")
    modules_src = "; ".join(f"{g}: {mods[g][1]}" for g in groups)

    kernels: Dict[Tuple[str, str], Kernel] = {}
    failures: List[str] = []
    for g in groups:
        if "tailored" in kinds:
            kernels[("tailored", g)] = tailored_kernel(g)
        if "debian" in kinds:
            kernels[("debian", g)] = debian_as_kernel(g, debian, mods[g][0])
    # builds: (b) first (the long one), then (c)
    for kind, make_kernel in (("localmod", lambda g: localmod_kernel(g, src, src_sha, debian,
                                                                       *mods[g])),
                              ("tiny", lambda g: tiny_kernel(g, src, src_sha))):
        if kind not in kinds:
            continue
        for g in groups:
            try:
                kernels[(kind, g)] = make_kernel(g)
            except (RuntimeError, subprocess.CalledProcessError) as e:
                failures.append(f"{kind} {g}: {e}")
                log(f"FAILED {kind} {g}: {e}")
                kernels[(kind, g)] = Kernel(kind, g, f"{kind}-{g}", missing=f"build failed: {e}")
    for (kind, g), k in kernels.items():
        if k.missing:
            log(f"{KIND_LABELS[kind]} for {g}: MISSING: {k.missing}")
        elif kind == "tiny":
            same = [h for (kk, h), other in kernels.items() if kk == kind and h != g
                    and not other.missing and other.config == k.config]
            if same:
                k.notes.append(f"the same configuration as the tiny kernel of {', '.join(same)}")
    if args.build_only:
        for (kind, g), k in sorted(kernels.items()):
            if k.build and "seconds" in k.build:
                log(f"{kind} {g}: {k.image} ({'cached' if k.build.get('warm') else 'built'}; "
                    f"{k.build['seconds']} s)")
        return 1 if failures else 0

    sizes = {}
    for key, k in kernels.items():
        s = measure(k)
        if "missing" in s:
            s["missing_short"] = "missing"
        s["build"] = k.build if "seconds" in k.build else None
        sizes[key] = s

    machine, base_cmdline, machine_src = baseline_machine()
    cmdline = f"console=ttyS0 nokaslr {base_cmdline}".strip()
    cmdline = " ".join(dict.fromkeys(cmdline.split()))  # no duplicate words
    machine_desc = (f"{machine.machine}, {machine.cpus} CPU, {machine.memory}, devices "
                    f"{', '.join(machine.devices) or 'none'}; cmdline `{cmdline}` "
                    f"(machine from {machine_src})")
    boots: Dict[Tuple[str, str], dict] = {}
    cache: Dict = {}
    for g in groups:
        images = app_images(g, args.dev_image)
        for kind in kinds:
            k = kernels.get((kind, g))
            if k is None or k.missing:
                continue
            boots[(kind, g)] = boot_kernel(k, images, args.boots, machine, cmdline,
                                           args.dev_image, cache)
    text = render(args, groups, kernels, sizes, boots, machine_desc, modules_src,
                  time.monotonic() - t0)
    missing = [f"- {KIND_LABELS[k]} {g}: {kern.missing}" for (k, g), kern in kernels.items()
               if kern.missing]
    if missing:
        text += "\n## Missing\n\n" + "\n".join(missing) + "\n"
    print(text)
    if not args.no_write:
        OUT.write_text(text)
        log(f"wrote {OUT}")
    (SCRATCH / "last-run.json").write_text(json.dumps(
        {"sizes": {f"{k}/{g}": v for (k, g), v in sizes.items()},
         "boots": {f"{k}/{g}": v for (k, g), v in boots.items()}}, indent=2, default=str))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
