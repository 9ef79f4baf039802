"""KconfigModel against the kernel's own `conf` (Linux 6.1 scripts/kconfig), not against mocks.

- Small Kconfig files, exhaustively: every assignment of their bool/tristate symbols is given to
  `conf --olddefconfig`; the model must accept exactly the ones `conf` leaves unchanged.
- The real x86_64 tree: 30 `make randconfig` results (KCONFIG_SEED=1..30, restricted through
  KCONFIG_ALLCONFIG to a tinyconfig-based universe) must satisfy the encoding, and single-symbol
  mutations of them must be accepted by the model exactly when `make olddefconfig` keeps them.
  (The benchmark runs 100 seeds; 30 keep this file under ~3 minutes.)

Helpers here are shared with test_compose.py (cached per session by srctree).
"""

from __future__ import annotations

import functools
import itertools
import os
import random
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Mapping, Tuple

import pytest

from kernel_rules.domain.fragments import config_lines, parse_config
from kernel_rules.domain.kconfig import load_kconfig
from kernel_rules.domain.kconfig_model import KconfigModel

ENV = {"PATH": "/usr/bin:/bin"}
SEEDS = range(1, 31)
MUTATIONS = 8
UNIVERSE_OPTIONS = (
    "NET INET UNIX PACKET EPOLL EVENTFD SIGNALFD TIMERFD FUTEX PROC_FS SYSFS TMPFS SHMEM PRINTK "
    "TTY SERIAL_8250 SERIAL_8250_CONSOLE BLK_DEV_INITRD BINFMT_ELF BINFMT_SCRIPT DEVTMPFS "
    "MULTIUSER POSIX_TIMERS FILE_LOCKING INOTIFY_USER AIO PCI VIRTIO_MENU VIRTIO_PCI "
    "VIRTIO_CONSOLE MODULES BLOCK SYSVIPC").split()


def timed(label: str, t0: float) -> None:
    print(f"[time] {label}: {time.monotonic() - t0:.1f}s", flush=True)


def make(srctree: str, odir: str, *targets: str, **env: str) -> None:
    """`make -s -j2 -C srctree O=odir ARCH=x86_64 targets` (out of tree, quiet)."""
    cmd = ["make", "-s", "-j2", "-C", srctree, f"O={odir}", "ARCH=x86_64", *targets]
    done = subprocess.run(cmd, env={**ENV, **env}, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"


def render(values: Mapping[str, str]) -> str:
    return "".join(line + "\n" for line in config_lines(values))


@functools.lru_cache(maxsize=None)
def kconf_for(srctree: str):
    t0 = time.monotonic()
    kconf = load_kconfig(srctree, "x86_64", ENV)
    timed("load Kconfig (kconfiglib)", t0)
    return kconf


@functools.lru_cache(maxsize=None)
def universe_for(srctree: str, basetemp: str) -> Tuple[Dict[str, str], str]:
    """tinyconfig + UNIVERSE_OPTIONS + olddefconfig: (its values, the O= tree holding `conf`)."""
    t0 = time.monotonic()
    odir = os.path.join(basetemp, "kr-universe")
    os.makedirs(odir, exist_ok=True)
    make(srctree, odir, "tinyconfig")
    with open(os.path.join(odir, ".config"), "a") as f:
        f.writelines(f"CONFIG_{o}=y\n" for o in UNIVERSE_OPTIONS)
    make(srctree, odir, "olddefconfig")
    with open(os.path.join(odir, ".config")) as f:
        config = parse_config(f.read())
    missing = [o for o in UNIVERSE_OPTIONS if config.get(o) not in ("y", "m")]
    assert not missing, f"universe options that did not stick: {missing}"
    timed("universe (tinyconfig + options + olddefconfig)", t0)
    return config, odir


def on(config: Mapping[str, str]) -> set:
    return {s for s, v in config.items() if v in ("y", "m")}


@pytest.fixture(scope="module")
def kconf(kernel_srctree):
    return kconf_for(str(kernel_srctree))


@pytest.fixture(scope="module")
def universe(kernel_srctree, tmp_path_factory) -> Dict[str, str]:
    return universe_for(str(kernel_srctree), str(tmp_path_factory.getbasetemp()))[0]


@pytest.fixture(scope="module")
def conf_binary(kernel_srctree, tmp_path_factory) -> str:
    odir = universe_for(str(kernel_srctree), str(tmp_path_factory.getbasetemp()))[1]
    return os.path.join(odir, "scripts/kconfig/conf")


# ---- small Kconfig files, exhaustively ---------------------------------------------------------

TRISTATES = """
config MODULES
\tbool "Enable loadable module support"
\tmodules

config P
\tbool "P: shows B's prompt"

config A
\ttristate "A"

config B
\ttristate "B" if P
\tdepends on A
\tdefault m if !P

config I
\ttristate "I implies B"
\timply B

config S
\ttristate "S selects C"
\tselect C

config C
\ttristate
\tdepends on B
"""

CHOICES = """
config X
\tbool "X"

config N
\tint "N"
\tdefault 3

config Y
\tbool
\tdefault y if X && N > 2
\tdefault n

choice
\tprompt "pick one"
\tdefault C2

config C1
\tbool "C1"

config C2
\tbool "C2"
\tdepends on X

endchoice

choice
\tprompt "optional pick"
\toptional
\tdepends on !C2

config O1
\tbool "O1"

config O2
\tbool "O2"

endchoice

menu "hidden unless Y"
\tvisible if Y

config V
\tbool "V"
\tselect W
\tdepends on X != C1

endmenu

config W
\tbool "W" if !C2
\tdefault y
"""


def synthetic_kconf(directory: Path, text: str):
    """kconfiglib's view of a small Kconfig file (6.1's `modules` keyword as `option modules`)."""
    import kconfiglib

    path = directory / "Kconfig.kconfiglib"
    path.write_text(text.replace("\tmodules\n", "\toption modules\n"))
    return kconfiglib.Kconfig(str(path), warn=False)


def conf_olddefconfig(conf: str, directory: Path, values: Mapping[str, str]) -> Dict[str, str]:
    """What the kernel's `conf --olddefconfig` makes of `values` for directory/Kconfig."""
    (directory / ".config").write_text(render(values))
    subprocess.run([conf, "--olddefconfig", "Kconfig"], cwd=directory, env=ENV, check=True,
                   capture_output=True)
    return parse_config((directory / ".config").read_text())


def exhaustive(conf: str, directory: Path, text: str, values: Mapping[str, str]):
    """(number of assignments, number conf keeps, [mismatches between conf and the model])."""
    (directory / "Kconfig").write_text(text)
    model = KconfigModel.build(synthetic_kconf(directory, text), None, values)
    names = list(model.symbols)
    domains = [("n", "m", "y") if model.symbols[s] else ("n", "y") for s in names]
    kept, mismatches, total = 0, [], 0
    for combo in itertools.product(*domains):
        config = dict(zip(names, combo), **values)
        result = conf_olddefconfig(conf, directory, config)
        accepted = all(result.get(s, "n") == config[s] for s in names)
        violated = model.check(config)
        total, kept = total + 1, kept + accepted
        if accepted != (violated == []):
            mismatches.append((combo, {s: result.get(s, "n") for s in names}, violated))
    return total, kept, mismatches


@pytest.mark.parametrize("text, values", [(TRISTATES, {}), (CHOICES, {"N": "3"})],
                         ids=["tristate-select-imply", "choices-relations-menus"])
def test_model_accepts_exactly_the_olddefconfig_fixpoints(text, values, conf_binary, tmp_path):
    t0 = time.monotonic()
    total, kept, mismatches = exhaustive(conf_binary, tmp_path, text, values)
    timed(f"{total} assignments through conf --olddefconfig and the model", t0)
    assert mismatches == [], "\n".join(map(str, mismatches[:10]))
    assert 0 < kept < total


def test_model_basics(tmp_path):
    kconf = synthetic_kconf(tmp_path, TRISTATES)
    model = KconfigModel.build(kconf, {"MODULES": "y", "A": "m", "B": "m"})
    assert model.symbols == {"MODULES": False, "P": False, "A": True, "B": True, "I": True,
                             "S": True, "C": True}
    with pytest.raises(KeyError):
        model.var("P", "m")
    assert model.check({"MODULES": "y", "A": "m", "B": "m"}) == []
    assert any(v.startswith("C: outside the universe")
               for v in model.check({"MODULES": "y", "A": "y", "B": "y", "S": "y", "C": "y"}))
    assert model.check({"A": "m"}) == [  # without MODULES, m is y; and B's `default m` too
        "A: m only when tristate-typed (MODULES=y, not in a y choice) (got A=m)",
        "B: no visible prompt: equals its default/imply/select value (got B=n)"]
    assignment = model.assumptions_for({"MODULES": "y", "A": "m"})
    assert model.value_of(assignment, "A") == "m" and model.value_of(assignment, "B") == "n"


# ---- the real tree ------------------------------------------------------------------------------


def allconfig_text(kconf, universe: Mapping[str, str]) -> str:
    """KCONFIG_ALLCONFIG keeping randconfig inside the universe: symbols outside it are n, the
    universe's choice picks and EXPERT/EMBEDDED (which hide many default-y options) are y."""
    import kconfiglib

    keep = on(universe)
    lines = ["CONFIG_EXPERT=y", "CONFIG_EMBEDDED=y"]
    for sym in kconf.unique_defined_syms:
        if sym.orig_type not in (kconfiglib.BOOL, kconfiglib.TRISTATE):
            continue
        if sym.choice is not None and sym.name in keep:
            lines.append(f"CONFIG_{sym.name}=y")
        elif sym.choice is None and sym.name not in keep:
            lines.append(f"# CONFIG_{sym.name} is not set")
    return "".join(line + "\n" for line in lines)


@pytest.fixture(scope="module")
def randconfigs(kernel_srctree, kconf, universe, tmp_path_factory) -> List[Dict[str, str]]:
    work = tmp_path_factory.mktemp("randconfig")
    (work / "allconfig").write_text(allconfig_text(kconf, universe))
    out = []
    for seed in SEEDS:
        t0 = time.monotonic()
        make(str(kernel_srctree), str(work / "o"), "randconfig", KCONFIG_SEED=str(seed),
             KCONFIG_ALLCONFIG=str(work / "allconfig"))
        out.append(parse_config((work / "o/.config").read_text()))
        timed(f"make randconfig KCONFIG_SEED={seed}", t0)
    return out


def test_every_randconfig_satisfies_the_encoding(kconf, universe, randconfigs):
    t0 = time.monotonic()
    full = KconfigModel.build(kconf, None, universe)
    timed(f"build full model ({full.pool.top} vars, {len(full.clauses)} clauses)", t0)
    t0 = time.monotonic()
    small = KconfigModel.build(kconf, universe)
    timed(f"build universe model ({small.pool.top} vars, {len(small.clauses)} clauses)", t0)
    assert full.check(universe) == [] and small.check(universe) == []
    t0 = time.monotonic()
    failures, inside = [], 0
    for seed, config in zip(SEEDS, randconfigs):
        for v in full.check(config):
            failures.append(f"seed {seed}: {v}")
        within = on(config) <= on(universe)
        inside += within
        if (small.check(config) == []) != within:
            failures.append(f"seed {seed}: universe model disagrees (inside={within})")
    timed(f"check {len(randconfigs)} configs against both models", t0)
    assert failures == [], "\n".join(failures[:30])
    assert inside >= len(randconfigs) * 2 // 3
    assert len({tuple(sorted(on(c))) for c in randconfigs}) == len(randconfigs)
    assert any("m" in c.values() for c in randconfigs)  # tristates at m were covered too


def mutate(config: Mapping[str, str], model: KconfigModel, symbol: str, rng) -> Dict[str, str]:
    """A full listing of `config` with `symbol` flipped (on -> n, n -> y or m)."""
    out = {s: config.get(s, "n") for s in model.symbols}
    out.update({s: v for s, v in config.items() if s not in model.symbols})
    out[symbol] = "n" if out[symbol] != "n" else rng.choice(
        ["y", "m"] if model.symbols[symbol] else ["y"])
    return out


def test_mutated_configs_are_rejected_exactly_when_olddefconfig_changes_them(
        kernel_srctree, kconf, universe, randconfigs, tmp_path):
    """One-symbol flips of randconfig results inside the universe. Most flips cascade, so each
    is picked (from 40 random candidates, by the quick universe model) to alternate the verdict;
    `make olddefconfig` judges, and the full model must agree too."""
    full, small = KconfigModel.build(kconf, None, universe), KconfigModel.build(kconf, universe)
    names = sorted(on(universe) & set(full.symbols))
    inside = [c for c in randconfigs if on(c) <= on(universe)]
    t0 = time.monotonic()
    outcomes, failures = [], []
    for i, config in enumerate(inside[:MUTATIONS]):
        rng = random.Random(i)
        for symbol in rng.sample(names, 40):
            mutated = mutate(config, full, symbol, rng)
            violated = small.check(mutated)
            if (violated == []) == (i % 2 == 0):
                break
        (tmp_path / ".config").write_text(render(mutated))
        make(str(kernel_srctree), str(tmp_path), "olddefconfig")
        result = parse_config((tmp_path / ".config").read_text())
        kept = all(result.get(s, "n") == mutated[s] for s in full.symbols)
        outcomes.append(kept)
        if not kept == (violated == []) == (full.check(mutated) == []):
            failures.append(f"config {i}, {symbol}={mutated[symbol]}: olddefconfig "
                            f"kept={kept}, model says {violated}")
    timed(f"{len(outcomes)} mutations through make olddefconfig ({sum(outcomes)} kept)", t0)
    assert failures == [], "\n".join(failures)
    assert sum(outcomes) >= 3 and outcomes.count(False) >= 3
