#!/usr/bin/env python3
"""The Kconfig model at Debian scale: its fidelity and the speed of composition.

The unit test tests/unit/test_kconfig_model.py checks `KconfigModel` against the kernel's own
`conf` on a small tinyconfig-based universe. This benchmark does the same at the size of a real
distribution kernel, Debian's cloud config (`boot/config-*` of the pinned cloud image package,
third_party/debian/cloud-kernel.lock, the same Debian build as the source tarball), and times each
step. It reuses the unit test's helpers.

1. Universe: Debian's `config.amd64_none_cloud-amd64`, through `make olddefconfig` (ARCH=x86_64)
   in a scratch O= tree, so that toolchain-dependent values (compiler probes, pahole) are this
   machine's. Reports the symbols olddefconfig changed and the bool/tristate symbols at y and m.
2. Model: loading Kconfig with kconfiglib, `KconfigModel.build(kconf, universe=debian)` (variables,
   clauses, symbols), and `model.check(debian)`, which must be empty.
3. Differential: `conf --randconfig` with KCONFIG_SEED=1..SEEDS, restricted to the Debian
   universe with KCONFIG_ALLCONFIG, in two flavours: *plain*, the unit test's `allconfig_text`
   (symbols outside the universe n, Debian's choice picks y), and *pinned*, the same plus the
   visible symbols that most often lead outside the universe (SMP, SECURITY_APPARMOR, ...) pinned
   to Debian's values, learned from a few rounds of 10 other seeds. At Debian scale `allconfig_text`
   alone cannot keep randconfig inside: random values of the universe's own visible symbols switch
   on invisible symbols Debian never has (BROKEN_ON_SMP when SMP=n), which the model rejects by
   design. Every result is checked against the Debian-universe model, given to
   `conf --olddefconfig` (does conf keep it?) and checked against a model without universe built
   with that configuration's own int/hex/string values (those are constants in the model). The
   model must accept exactly what conf keeps (the Debian model: those inside the universe).
4. Composition on the Debian model: a small server's requirements (EPOLL, FUTEX, UNIX, INET,
   PROC_FS, VIRTIO_NET, VIRTIO_BLK, EXT4_FS, ...; those on in the universe), objective = number of
   options (every weight 1). Times `compose`, compares the enabled y/m counts with Debian's, renders
   the solution and runs the kernel's `olddefconfig` on it: is it a fixpoint of the bool/tristate
   values, and did every requirement survive? Then two unsatisfiable cases (the same requirements
   plus EPOLL=n, or NET=n, from a second source): the minimal conflict, its time, and whether the
   conflict holds without the universe too (a no-universe model's solver core names the symbols
   outside the universe that a solution would need).
5. A Markdown page with the machine and every number, printed and written to
   docs/benchmarks/kconfig-debian.md.

Scratch files (O= tree, randconfigs, the composed .config) go to $KR_BENCH_SCRATCH, default
/tmp/kr-kconfig-debian, recreated on every run. The number of seeds is $KR_BENCH_SEEDS (100).

Usage: .venv/bin/python benchmarks/kconfig_debian.py   (about 10 minutes on a busy 2-core machine)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import shutil
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Mapping, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.lib.report import cpu_model, gcc_version, timed, write_page  # noqa: E402
from benchmarks.lib.source import CLOUD_LOCK, DEB_DIR, cloud_debs, read_lock, source_tree  # noqa: E402
from kernel_rules.domain.compose.solver import (  # noqa: E402
    Requirement,
    Unsatisfiable,
    compose,
    render_config,
)
from kernel_rules.domain.kconfig.tree import load_kconfig  # noqa: E402
from kernel_rules.domain.kconfig.model import KconfigModel  # noqa: E402
from pysat.solvers import Solver  # noqa: E402
from tests.unit.test_kconfig_model import (  # noqa: E402
    ENV,
    allconfig_text,
    comparison_key,
    comparisons,
    conf_randconfigs,
    make,
    olddefconfig_verdict,
    on,
    read_config,
)

# The pinned cloud image package carries the config Debian built it with. (Debian's archive keeps
# only the newest linux-config-6.1, so that package cannot be pinned.)
_CLOUD_LOCK = read_lock(CLOUD_LOCK)
IMAGE_DEB = DEB_DIR / f"{_CLOUD_LOCK['image_package']}_{_CLOUD_LOCK['version']}_amd64.deb"
DEBIAN_CONFIG = Path(
    f"config-{_CLOUD_LOCK['image_package'][len('linux-image-') : -len('-unsigned')]}"
)
OUT = REPO / "docs/benchmarks/kconfig-debian.md"
SCRATCH = Path(os.environ.get("KR_BENCH_SCRATCH", "/tmp/kr-kconfig-debian"))
SEEDS = range(1, int(os.environ.get("KR_BENCH_SEEDS", "100")) + 1)
# A small virtualised server: (symbol, value); "ym" where a module would do.
SERVER = [
    ("EPOLL", "y"),
    ("EVENTFD", "y"),
    ("SIGNALFD", "y"),
    ("TIMERFD", "y"),
    ("FUTEX", "y"),
    ("AIO", "y"),
    ("INOTIFY_USER", "y"),
    ("FILE_LOCKING", "y"),
    ("POSIX_TIMERS", "y"),
    ("MULTIUSER", "y"),
    ("SYSVIPC", "y"),
    ("UNIX", "y"),
    ("INET", "y"),
    ("IPV6", "ym"),
    ("PACKET", "ym"),
    ("PROC_FS", "y"),
    ("SYSFS", "y"),
    ("TMPFS", "y"),
    ("DEVTMPFS", "y"),
    ("BLK_DEV_INITRD", "y"),
    ("BINFMT_ELF", "y"),
    ("BINFMT_SCRIPT", "ym"),
    ("SERIAL_8250_CONSOLE", "y"),
    ("VIRTIO_PCI", "ym"),
    ("VIRTIO_NET", "ym"),
    ("VIRTIO_BLK", "ym"),
    ("VIRTIO_CONSOLE", "ym"),
    ("EXT4_FS", "ym"),
    ("MODULES", "y"),
    ("CGROUPS", "y"),
    ("NAMESPACES", "y"),
    ("SECCOMP", "y"),
]
SERVER_SOURCE = "benchmark server set"

T_START = time.monotonic()


def say(msg: str) -> None:
    print(f"[{time.monotonic() - T_START:6.1f}s] {msg}", flush=True)


def bool_tri(kconf) -> set:
    import kconfiglib as K

    return {s.name for s in kconf.unique_defined_syms if s.orig_type in (K.BOOL, K.TRISTATE)}


def diff(a: Mapping[str, str], b: Mapping[str, str], names=None) -> List[str]:
    """Symbols whose values differ (absent is n), restricted to `names` if given."""
    names = (set(a) | set(b)) if names is None else names
    return sorted(s for s in names if a.get(s, "n") != b.get(s, "n"))


def count(config: Mapping[str, str], value: str) -> int:
    return sum(v == value for v in config.values())


def machine() -> str:
    import kconfiglib
    import pysat

    return (
        f"{os.cpu_count()} cores ({cpu_model()}), {platform.platform()}, Python "
        f"{platform.python_version()}, kconfiglib {kconfiglib.VERSION[0]}.{kconfiglib.VERSION[1]}"
        f".{kconfiglib.VERSION[2]}, python-sat {pysat.__version__}, {gcc_version()}"
    )


# ---- 1. the Debian universe ---------------------------------------------------------------------


def debian_config_text() -> str:
    """`boot/config-<release>` of the pinned cloud image package."""
    tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(IMAGE_DEB)], stdout=subprocess.PIPE)
    text = subprocess.run(
        ["tar", "-xO", f"./boot/{DEBIAN_CONFIG}"],
        stdin=tar.stdout,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if tar.wait() != 0:
        sys.exit(f"dpkg-deb --fsys-tarfile {IMAGE_DEB} failed")
    return text


def debian_universe(srctree: str, odir: Path) -> Dict[str, object]:
    shipped_text = debian_config_text()
    (odir / ".config").write_text(shipped_text)
    _, seconds = timed(make, srctree, str(odir), "olddefconfig")
    shipped, debian = read_config(shipped_text), read_config((odir / ".config").read_text())
    return {
        "shipped": shipped,
        "debian": debian,
        "changed": diff(shipped, debian),
        "olddefconfig_s": seconds,
    }


# ---- 3. the differential ------------------------------------------------------------------------


def differential(
    srctree: str,
    odir: Path,
    kconf,
    model: KconfigModel,
    debian: Mapping[str, str],
    name: str,
    allconfig: str,
) -> Dict[str, object]:
    """`conf --randconfig` for SEEDS with KCONFIG_ALLCONFIG=`allconfig`, each result checked
    against `model`, `conf --olddefconfig` and a no-universe model with its own values."""
    work = SCRATCH / name
    work.mkdir()
    (work / "allconfig").write_text(allconfig)
    paths, rand_s = timed(conf_randconfigs, srctree, str(odir), work, SEEDS, work / "allconfig")
    configs = {seed: read_config(paths[seed].read_text()) for seed in SEEDS}
    violated, check_s = timed(lambda: {seed: model.check(c) for seed, c in configs.items()})
    say(
        f"{name}: checked {len(configs)} randconfigs against the Debian model in {check_s:.1f} s: "
        f"{sum(not v for v in violated.values())} satisfy it"
    )
    t0 = time.monotonic()
    with ThreadPoolExecutor(2) as pool:  # `conf --olddefconfig` on each, two at a time
        verdicts = dict(
            zip(
                SEEDS,
                pool.map(lambda seed: olddefconfig_verdict(srctree, str(odir), paths[seed]), SEEDS),
            )
        )
    conf_s = time.monotonic() - t0
    kept = {seed: v == "olddefconfig keeps it" for seed, v in verdicts.items()}
    say(
        f"{name}: conf --olddefconfig on {len(configs)} randconfigs in {conf_s:.1f} s: "
        f"{sum(kept.values())} kept"
    )
    universe_on = on(debian)
    outside = {seed: sorted(on(c) - universe_on) for seed, c in configs.items()}

    # every one against a model without universe built with its own int/hex/string values (the
    # model reads those only through comparisons, so configurations with the same outcomes share
    # one; each model is dropped once its configurations are checked)
    relations = comparisons(kconf)
    groups: Dict[tuple, List[int]] = {}
    for seed in SEEDS:
        groups.setdefault(comparison_key(relations, configs[seed]), []).append(seed)
    own: Dict[int, List[str]] = {}
    t0 = time.monotonic()
    for seeds in groups.values():
        own_model = KconfigModel.build(kconf, None, configs[seeds[0]])
        own.update((seed, own_model.check(configs[seed])) for seed in seeds)
        del own_model
    own_s = time.monotonic() - t0
    say(
        f"{name}: checked them against {len(groups)} no-universe models with their own "
        f"int/hex/string values in {own_s:.1f} s: {sum(not v for v in own.values())} satisfy them"
    )
    sizes = sorted(len(on(c)) for c in configs.values())
    return {
        "name": name,
        "configs": configs,
        "violated": violated,
        "verdicts": verdicts,
        "kept": kept,
        "outside": outside,
        "own": own,
        "own_models": len(groups),
        "own_s": own_s,
        "rand_s": rand_s,
        "check_s": check_s,
        "conf_s": conf_s,
        "sizes": sizes,
        "with_m": sum("m" in c.values() for c in configs.values()),
        "modules": sum(c.get("MODULES") == "y" for c in configs.values()),
        "distinct": len({tuple(sorted(on(c))) for c in configs.values()}),
    }


def _symbols_in(e) -> set:
    """The non-constant symbols of a kconfiglib expression (a choice: its prompt conditions)."""
    import kconfiglib as K

    if e.__class__ is tuple:
        return set().union(*(_symbols_in(x) for x in e[1:]))
    if e.__class__ is K.Choice:
        return set().union(*(_symbols_in(n.prompt[1]) for n in e.nodes if n.prompt))
    return {e} if e.__class__ is K.Symbol and not e.is_constant else set()


def causes(
    sym,
    config: Mapping[str, str],
    debian: Mapping[str, str],
    debian_on: set,
    pins: Mapping,
    seen: set,
) -> set:
    """Prompted bool/tristate symbols on in Debian, not yet pinned, whose value in `config` differs
    from Debian's and that appear in what decides `sym` (dependencies, defaults, selects, implies, its
    prompts; for a choice member also the prompts of Debian's pick); through unprompted, pinned
    and int/hex/string symbols, recursively."""
    import kconfiglib as K

    if sym.name in seen:
        return set()
    seen.add(sym.name)
    exprs = [sym.direct_dep, sym.rev_dep, sym.weak_rev_dep]
    exprs += [x for default in sym.defaults for x in default]
    exprs += [n.prompt[1] for n in sym.nodes if n.prompt]
    if sym.choice is not None:
        exprs += [
            n.prompt[1]
            for m in sym.choice.syms
            if debian.get(m.name, "n") != "n"
            for n in m.nodes
            if n.prompt
        ] + [sym.choice]
    out = set()
    for s in set().union(*map(_symbols_in, exprs)):
        if s.orig_type in (K.BOOL, K.TRISTATE):
            if config.get(s.name, "n") == debian.get(s.name, "n"):
                continue
            if s.name in debian_on and s.name not in pins and any(n.prompt for n in s.nodes):
                out.add(s.name)
                continue
        out |= causes(s, config, debian, debian_on, pins, seen)
    return out


def pinned_allconfig(
    srctree: str, odir: Path, kconf, debian: Mapping[str, str]
) -> Tuple[str, Dict]:
    """`allconfig_text` plus pins learned in rounds of 10 randconfigs (KCONFIG_SEED=1001...): each
    symbol outside the universe that comes on is traced back (`causes`) to visible symbols whose
    random value differs from Debian's, and those are pinned to Debian's value, until 8 of 10
    configurations stay inside the universe (at most 8 rounds)."""
    base, pins, universe_on, learn = allconfig_text(kconf, debian), {}, on(debian), []
    work = SCRATCH / "pins"
    work.mkdir()

    def text() -> str:
        return base + "".join(
            f"CONFIG_{s}={v}\n" if v != "n" else f"# CONFIG_{s} is not set\n"
            for s, v in sorted(pins.items())
        )

    for round_ in range(8):
        (work / "allconfig").write_text(text())
        seeds = range(1001 + 10 * round_, 1011 + 10 * round_)
        with contextlib.redirect_stdout(io.StringIO()):  # conf_randconfigs's own timing lines
            paths = conf_randconfigs(srctree, str(odir), work, seeds, work / "allconfig")
        configs = [read_config(paths[seed].read_text()) for seed in seeds]
        inside = sum(on(c) <= universe_on for c in configs)
        new = set()
        for c in configs:
            for x in sorted(on(c) - universe_on):
                new |= causes(kconf.syms[x], c, debian, universe_on, pins, set())
        if inside >= 8 or not new:
            learn.append((inside, []))
            say(f"   pinning round {round_ + 1}: {inside}/10 inside the universe; done")
            break
        learn.append((inside, sorted(new)))
        say(f"   pinning round {round_ + 1}: {inside}/10 inside the universe; pin {sorted(new)}")
        pins.update((s, debian.get(s, "n")) for s in new)
    return text(), {"pins": pins, "rounds": learn}


# ---- 4. composition -----------------------------------------------------------------------------


def universe_cause(full: KconfigModel, universe_on: set, reqs: List[Requirement]) -> str:
    """Why `reqs` conflict: also without the universe, or only because a solution needs symbols
    outside it (named from the solver's core on a no-universe model)."""
    lits = [full.literal(r.symbol, r.value) for r in reqs]  # may add gates: before the solver
    if any(lit is False for lit in lits):
        return "they conflict without the universe too"
    lits = [lit for lit in lits if lit is not True]
    outside = {
        -full.var(name, kind): name
        for name, tri in full.symbols.items()
        if name not in universe_on
        for kind in ("y", "m")[: 1 + tri]
    }
    with Solver(name="g4", bootstrap_with=full.clauses) as solver:
        if not solver.solve(assumptions=lits):
            return "they conflict without the universe too"
        if solver.solve(assumptions=lits + list(outside)):
            return "(satisfiable with the universe: unexpected)"
        needed = sorted({outside[a] for a in solver.get_core() or [] if a in outside})
    return (
        "they conflict only inside the universe: a solution needs "
        + ", ".join(needed)
        + ", which Debian has n"
    )


def composition(
    srctree: str, odir: Path, model: KconfigModel, full: KconfigModel, debian: Mapping[str, str]
) -> Dict[str, object]:
    reqs = [Requirement(s, v, SERVER_SOURCE) for s, v in SERVER if debian.get(s) in ("y", "m")]
    skipped = [s for s, _ in SERVER if debian.get(s) not in ("y", "m")]
    solution, compose_s = timed(compose, model, reqs)
    say(f"composed {len(reqs)} requirements in {compose_s:.1f} s")
    work = SCRATCH / "compose"
    work.mkdir()
    path = work / "composed.config"
    path.write_text(render_config(solution))
    verdict, conf_s = timed(olddefconfig_verdict, srctree, str(odir), path)
    after = read_config(path.with_suffix(".olddefconfig").read_text())
    names = set(model.symbols)
    changed_bt = diff(solution, after, names)
    others = [s for s in solution if s not in names]
    changed_other = sorted(s for s in others if s in after and after[s] != solution[s])
    dropped = sorted(s for s in others if s not in after)  # conf omits them: dependencies off
    table = {"y": ("y",), "m": ("m",), "ym": ("y", "m"), "n": ("n",), "not-y": ("n", "m")}
    lost = [str(r) for r in reqs if after.get(r.symbol, "n") not in table[r.value]]
    say(
        f"olddefconfig on the composed config ({conf_s:.1f} s): {len(changed_bt)} bool/tristate "
        f"changes {changed_bt[:5]}, {len(changed_other)} int/hex/string changes "
        f"{changed_other[:5]}, {len(lost)} requirements lost"
    )

    unsat = []  # the server set plus one contradicting requirement from a second source
    for extra in (
        Requirement("EPOLL", "n", "policy: no epoll (a second source)"),
        Requirement("NET", "n", "policy: no networking (a second source)"),
    ):
        t0 = time.monotonic()
        try:
            compose(model, reqs + [extra])
            conflict, cause = "(none: satisfiable!)", ""
        except Unsatisfiable as e:
            conflict = str(e)
            cause = universe_cause(
                full,
                on(debian),
                [r for r in reqs + [extra] if (r.symbol, r.value, r.source) in e.conflict],
            )
        seconds = time.monotonic() - t0
        say(f"unsatisfiable case {extra.symbol}={extra.value} in {seconds:.1f} s: {cause}")
        unsat.append({"extra": extra, "conflict": conflict, "cause": cause, "s": seconds})
    return {
        "reqs": reqs,
        "skipped": skipped,
        "solution": solution,
        "compose_s": compose_s,
        "verdict": verdict,
        "after": after,
        "changed_bt": changed_bt,
        "changed_other": changed_other,
        "dropped": dropped,
        "lost": lost,
        "conf_s": conf_s,
        "unsat": unsat,
    }


# ---- 5. the page --------------------------------------------------------------------------------


def page(r: Mapping[str, object]) -> str:
    u, c = r["universe"], r["compose"]
    debian, shipped, model = u["debian"], u["shipped"], r["model"]
    names = r["bool_tri"]
    changed = u["changed"]
    changed_bt = [s for s in changed if s in names]
    lines = [
        "# Kconfig model at Debian scale: fidelity and composition speed",
        "",
        f"Machine: {r['machine']}. Other jobs were running (load average {r['load']}), so times are upper bounds.",
        f"Generated by `.venv/bin/python benchmarks/kconfig_debian.py` ({r['total_s']:.0f} s this "
        "run). Linux 6.1.192 (the pinned tarball), ARCH=x86_64; universe = Debian's "
        f"`{DEBIAN_CONFIG.name}` (from `{IMAGE_DEB.name}`).",
        "",
        "## 1. Universe",
        "",
        f"- `make olddefconfig` on the shipped config: {u['olddefconfig_s']:.1f} s; it changed "
        f"{len(changed)} symbols ({len(changed_bt)} bool/tristate): "
        + (
            ", ".join(f"`{s}` {shipped.get(s, 'n')} -> {debian.get(s, 'n')}" for s in changed[:20])
            or "none"
        )
        + ("" if len(changed) <= 20 else f", ... ({len(changed) - 20} more)"),
        f"- bool/tristate symbols: {count(debian, 'y')} y, {count(debian, 'm')} m "
        f"({len(on(debian))} on, of {len(names)} defined)",
        "",
        "## 2. Model",
        "",
        "| step | time | size |",
        "|---|---:|---|",
        f"| load Kconfig (kconfiglib) | {r['load_s']:.1f} s | "
        f"{len(r['kconf'].unique_defined_syms)} symbols, {len(r['kconf'].unique_choices)} choices |",
        f"| `KconfigModel.build(kconf, universe=debian)` | {r['build_s']:.1f} s | "
        f"{model.pool.top} variables, {len(model.clauses)} clauses, {len(model.symbols)} "
        f"bool/tristate symbols ({sum(model.in_universe(s) for s in model.symbols)} in the "
        f"universe), {len(model.constraints)} constraints |",
        f"| `model.check(debian)` | {r['check_s']:.2f} s | "
        f"{len(r['debian_violations'])} violated constraints |",
    ]
    full = r["full"]
    lines += [  # the rest of the table
        f"| `KconfigModel.build(kconf, None, debian)` (no universe, for diagnostics) | "
        f"{r['full_build_s']:.1f} s | {full.pool.top} variables, {len(full.clauses)} clauses |",
        f"| `check(debian)` on it | {r['full_check_s']:.2f} s | "
        f"{len(r['full_violations'])} violated constraints |",
    ]
    for label, violations in (
        ("the universe model", r["debian_violations"]),
        ("the no-universe model", r["full_violations"]),
    ):
        if violations:
            lines += ["", f"Violations of Debian's own config in {label}:", ""]
            lines += [f"- {v}" for v in violations[:20]]
    plain, pinned, pins = r["diff"], r["pinned"], r["pins"]
    n = len(plain["configs"])
    learned = "; ".join(
        f"round {i + 1}: {inside}/10 inside" + (f", pin {', '.join(new)}" if new else "")
        for i, (inside, new) in enumerate(pins["rounds"])
    )
    lines += [
        "",
        f"## 3. Differential: {n} + {n} restricted randconfigs",
        "",
        f"`conf --randconfig` with KCONFIG_SEED=1..{n} (2 at a time, plus one `make randconfig` "
        "that writes the same file as the shortcut), each result checked against the Debian "
        "model, given to `conf --olddefconfig` (does conf keep it?), and checked against a model "
        "without universe built with that configuration's own int/hex/string values (configurations "
        "with the same outcomes of the comparisons with int/hex/string symbols share one). Two "
        "KCONFIG_ALLCONFIG flavours:",
        "",
        "- *plain*: the unit test's `allconfig_text(kconf, debian)`: every bool/tristate outside "
        "the universe n, Debian's choice picks y.",
        f"- *pinned*: the same plus {len(pins['pins'])} visible symbols pinned to Debian's values, "
        f"learned in {r['pinning']:.1f} s from rounds of 10 randconfigs (KCONFIG_SEED=1001...) by "
        "tracing each symbol outside the universe that came on back to visible symbols whose "
        f"random value differs from Debian's ({learned}). Pins: "
        + ", ".join(f"{k}={v}" for k, v in sorted(pins["pins"].items()))
        + ".",
        "",
        "| | plain | pinned |",
        "|---|---:|---:|",
        f"| `conf --randconfig` | {plain['rand_s']:.1f} s | {pinned['rand_s']:.1f} s |",
        f"| `model.check` on all (Debian model) | {plain['check_s']:.1f} s | "
        f"{pinned['check_s']:.1f} s |",
        f"| `conf --olddefconfig` on all | {plain['conf_s']:.1f} s | {pinned['conf_s']:.1f} s |",
        f"| no-universe own-values models: built and checked | {plain['own_models']}, "
        f"{plain['own_s']:.1f} s | {pinned['own_models']}, {pinned['own_s']:.1f} s |",
        f"| distinct configurations | {plain['distinct']} | {pinned['distinct']} |",
        f"| bool/tristate symbols on | {plain['sizes'][0]}..{plain['sizes'][-1]} | "
        f"{pinned['sizes'][0]}..{pinned['sizes'][-1]} |",
        f"| with MODULES=y / with some m | {plain['modules']} / {plain['with_m']} | "
        f"{pinned['modules']} / {pinned['with_m']} |",
        f"| inside the universe | {sum(not o for o in plain['outside'].values())} | "
        f"{sum(not o for o in pinned['outside'].values())} |",
        f"| conf keeps it | {sum(plain['kept'].values())} | {sum(pinned['kept'].values())} |",
    ]
    rows = [
        ("Debian model accepts", lambda d, x: not d["violated"][x]),
        (
            "Debian model rejects, config inside the universe",
            lambda d, x: d["violated"][x] and not d["outside"][x],
        ),
        (
            "Debian model rejects, config has symbols outside the universe",
            lambda d, x: d["violated"][x] and d["outside"][x],
        ),
        ("own-values model accepts", lambda d, x: not d["own"][x]),
        ("own-values model rejects", lambda d, x: bool(d["own"][x])),
    ]
    for label, pred in rows:
        cells = [
            sum(1 for x in d["configs"] if pred(d, x) and d["kept"][x] == k)
            for d in (plain, pinned)
            for k in (True, False)
        ]
        lines.append(
            f"| {label}: conf keeps / changes it | {cells[0]} / {cells[1]} | "
            f"{cells[2]} / {cells[3]} |"
        )
    freq = Counter(x for o in plain["outside"].values() for x in o)
    lines += [
        "",
        f"In the plain flavour {sum(not v for v in plain['violated'].values())} of {n} satisfy "
        "the Debian-universe encoding: `allconfig_text` can only pin symbols outside the "
        "universe, and random values of the universe's own visible symbols (SMP, MAXSMP, "
        "SECURITY_APPARMOR, PREEMPT_DYNAMIC, ...) switch on invisible symbols or choice members "
        "that Debian never has, which the model rejects by design (`outside the universe, so n`). "
        "The most frequent: "
        + ", ".join(f"{x} ({k})" for x, k in freq.most_common(10))
        + f". The pinned flavour keeps {sum(not o for o in pinned['outside'].values())} of {n} "
        f"inside, and {sum(not v for v in pinned['violated'].values())} satisfy the encoding.",
    ]
    suspicious = [
        (d["name"], x)
        for d in (plain, pinned)
        for x in sorted(d["configs"])
        if d["kept"][x] != (not d["own"][x])
        or (not d["outside"][x] and d["kept"][x] != (not d["violated"][x]))
        or (d["outside"][x] and not d["violated"][x])
    ]
    if suspicious:
        lines += [
            "",
            "**Disagreements with conf** (a model rejects a configuration conf keeps, "
            "or accepts one that conf changes or that is outside the universe):",
            "",
        ]
        for name, x in suspicious:
            d = plain if name == "plain" else pinned
            lines.append(
                f"- {name} KCONFIG_SEED={x}: {d['verdicts'][x]}; outside the universe: "
                f"{', '.join(d['outside'][x][:8]) or 'none'}"
            )
            lines += [f"  - Debian model: {v}" for v in d["violated"][x][:5]]
            lines += [f"  - own-values model: {v}" for v in d["own"][x][:5]]
    else:
        lines += [
            "",
            "No disagreement with conf in either flavour: the own-values model accepts "
            "exactly the configurations conf keeps, and the Debian model accepts exactly "
            "those of them inside the universe.",
        ]
    for d in (plain, pinned):
        rejected = sorted(x for x in d["configs"] if d["violated"][x])
        if not rejected:
            continue
        lines += [
            "",
            f"<details><summary>{d['name']}: the {len(rejected)} configurations the "
            "Debian model rejects (conf's verdict, symbols outside the universe, first "
            "violated constraints)</summary>",
            "",
        ]
        for x in rejected:
            out, v = d["outside"][x], d["violated"][x]
            lines.append(
                f"- KCONFIG_SEED={x} ({d['verdicts'][x]}; own-values model: "
                f"{'accepts' if not d['own'][x] else 'REJECTS'}): {len(out)} outside "
                f"({', '.join(out[:6])}{', ...' if len(out) > 6 else ''}), {len(v)} "
                "violated: " + "; ".join(v[:3])
            )
        lines += ["", "</details>"]
    sol, after = c["solution"], c["after"]
    lines += [
        "",
        "## 4. Composition on the Debian model",
        "",
        f'Requirements ({len(c["reqs"])}, source "{SERVER_SOURCE}", objective: number of '
        "enabled options, every weight 1): "
        + ", ".join(f"{q.symbol}={q.value}" for q in c["reqs"])
        + (f". Not in the universe, left out: {', '.join(c['skipped'])}" if c["skipped"] else "")
        + ".",
        "",
        "| configuration | compose time | y | m | y + m |",
        "|---|---:|---:|---:|---:|",
        f"| Debian cloud (after olddefconfig) | | {count(debian, 'y')} | {count(debian, 'm')} | "
        f"{len(on(debian))} |",
        f"| `compose` (MaxSAT on the Debian model) | {c['compose_s']:.1f} s | {count(sol, 'y')} | "
        f"{count(sol, 'm')} | {len(on(sol))} |",
        "",
        f"- `olddefconfig` on the `render_config` output ({c['conf_s']:.1f} s): "
        + (
            "a fixpoint, no bool/tristate value changed"
            if not c["changed_bt"]
            else f"**not a fixpoint**: {len(c['changed_bt'])} bool/tristate values changed: "
            + ", ".join(
                f"`{s}` {sol.get(s, 'n')} -> {after.get(s, 'n')}" for s in c["changed_bt"][:15]
            )
        )
        + "; int/hex/string values: "
        + (
            ", ".join(f"`{s}` {sol[s]} -> {after[s]}" for s in c["changed_other"][:10])
            if c["changed_other"]
            else "none changed"
        )
        + f" ({len(c['changed_other'])} changed; {len(c['dropped'])} more are no longer written "
        "because their dependencies are off)",
        "- requirements after `olddefconfig`: "
        + (f"all {len(c['reqs'])} hold" if not c["lost"] else "LOST: " + "; ".join(c["lost"])),
    ]
    for case in c["unsat"]:
        x = case["extra"]
        lines += [
            f"- unsatisfiable case: the {len(c['reqs'])} requirements plus `{x.symbol}={x.value}` "
            f'from "{x.source}": `compose` raised `Unsatisfiable` in {case["s"]:.1f} s; '
            f"{case['cause']}:",
            "",
            "  ```",
            *[f"  {line}" for line in case["conflict"].splitlines()],
            "  ```",
        ]
    lines += [
        "",
        "## How to re-run",
        "",
        "`.venv/bin/python benchmarks/kconfig_debian.py` (needs `third_party/setup.sh "
        "--debian-cloud`; scratch files in $KR_BENCH_SCRATCH, default /tmp/kr-kconfig-debian; "
        "$KR_BENCH_SEEDS seeds, default 100).",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    argparse.ArgumentParser(prog="kconfig_debian", description=__doc__.splitlines()[0]).parse_args(
        argv
    )
    cloud_debs()  # present and as pinned
    r: Dict[str, object] = {"machine": machine()}
    load_before = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    srctree = source_tree()
    say(f"source tree {srctree}")
    shutil.rmtree(SCRATCH, ignore_errors=True)
    odir = SCRATCH / "debian"
    odir.mkdir(parents=True)

    u = r["universe"] = debian_universe(srctree, odir)
    debian = u["debian"]
    say(
        f"1. universe: olddefconfig {u['olddefconfig_s']:.1f} s, {len(u['changed'])} symbols "
        f"changed vs shipped ({', '.join(u['changed'][:10])}); {count(debian, 'y')} y, "
        f"{count(debian, 'm')} m"
    )

    kconf, r["load_s"] = timed(load_kconfig, srctree, "x86_64", ENV)
    r["kconf"], r["bool_tri"] = kconf, bool_tri(kconf)
    say(f"2. loaded Kconfig in {r['load_s']:.1f} s ({len(kconf.unique_defined_syms)} symbols)")
    model, r["build_s"] = timed(KconfigModel.build, kconf, debian)
    r["model"] = model
    say(
        f"   built the model in {r['build_s']:.1f} s: {model.pool.top} variables, "
        f"{len(model.clauses)} clauses, {len(model.symbols)} symbols"
    )
    r["debian_violations"], r["check_s"] = timed(model.check, debian)
    say(
        f"   check(debian) in {r['check_s']:.2f} s: {len(r['debian_violations'])} violations "
        f"{r['debian_violations'][:5]}"
    )
    full, r["full_build_s"] = timed(KconfigModel.build, kconf, None, debian)
    r["full"] = full
    r["full_violations"], r["full_check_s"] = timed(full.check, debian)
    say(
        f"   no-universe model in {r['full_build_s']:.1f} s ({full.pool.top} variables, "
        f"{len(full.clauses)} clauses); check(debian): {len(r['full_violations'])} violations"
    )

    say(f"3. differential, {len(SEEDS)} seeds, KCONFIG_ALLCONFIG=allconfig_text(kconf, debian)")
    r["diff"] = differential(
        srctree, odir, kconf, model, debian, "plain", allconfig_text(kconf, debian)
    )
    say("   learning pins that keep randconfig inside the universe")
    pinned, r["pinning"] = timed(pinned_allconfig, srctree, odir, kconf, debian)
    say(f"   {len(SEEDS)} seeds, KCONFIG_ALLCONFIG=allconfig_text + {len(pinned[1]['pins'])} pins")
    r["pinned"] = differential(srctree, odir, kconf, model, debian, "pinned", pinned[0])
    r["pins"] = pinned[1]

    say("4. composition")
    r["compose"] = composition(srctree, odir, model, full, debian)

    r["load"] = (
        f"{load_before} at the start, "
        + ", ".join(f"{x:.1f}" for x in os.getloadavg())
        + " at the end"
    )
    r["total_s"] = time.monotonic() - T_START
    write_page(OUT, page(r))


if __name__ == "__main__":
    main()
