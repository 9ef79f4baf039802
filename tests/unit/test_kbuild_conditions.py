"""Kbuild presence conditions: synthetic trees for each construct, then the real 6.1 tree."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Dict, Iterable

import pytest

from kernel_rules.domain.map.conditions import (
    FALSE,
    TRUE,
    Formula,
    Not,
    Sym,
    Unknown,
    conj,
    definite_facts,
    disj,
    evaluate,
)
from kernel_rules.domain.map.kbuild_conditions import KbuildCondition, KbuildIndex


def tree(root: Path, files: Dict[str, str]) -> KbuildIndex:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return KbuildIndex(str(root))


def equivalent(f: Formula, g: Formula, symbols: Iterable[str]) -> bool:
    """Same truth value under every y/m/n assignment of `symbols`."""
    symbols = list(symbols)
    for values in itertools.product("ymn", repeat=len(symbols)):
        config = dict(zip(symbols, values))
        if evaluate(f, config) != evaluate(g, config):
            return False
    return True


def resolved(c: KbuildCondition) -> bool:
    return c.unresolved == () and "?(" not in str(c.formula)


# -- synthetic trees ---------------------------------------------------------------------------


def test_obj_y_config_and_obj_m(tmp_path):
    idx = tree(
        tmp_path,
        {
            "Kbuild": (
                "obj-y\t:= early.o\nobj-y += a.o\n"
                "obj-$(CONFIG_FOO) += b.o c.o\n"
                "obj-m += mod.o\nobj-$(CONFIG_BAR) += asm.o\n"
            )
        },
    )
    assert idx.condition("a.c") == KbuildCondition(TRUE, ())
    assert idx.condition("early.c") == KbuildCondition(TRUE, ())
    assert idx.condition("c.c") == KbuildCondition(Sym("FOO"), ())
    assert idx.condition("asm.S").formula == Sym("BAR")
    mod = idx.condition("mod.c")
    assert mod.formula == TRUE and any("obj-m" in n for n in mod.unresolved)


def test_composite_objects(tmp_path):
    idx = tree(
        tmp_path,
        {
            "Kbuild": (
                "obj-$(CONFIG_FOO) += foo.o\n"
                "foo-objs := a.o\n"
                "foo-y += b.o sub/s.o\n"
                "foo-$(CONFIG_BAR) += c.o\n"
                "ccflags-y += -DX\n"
                "bar-y := notbuilt.o\n"
            )
        },
    )  # bar.o is in no obj list: not a composite
    assert idx.condition("a.c").formula == Sym("FOO")
    assert idx.condition("b.c").formula == Sym("FOO")
    assert idx.condition("sub/s.c").formula == Sym("FOO")
    assert idx.condition("c.c").formula == conj(Sym("FOO"), Sym("BAR"))
    missing = idx.condition("notbuilt.c")
    assert isinstance(missing.formula, Unknown)
    assert missing.unresolved == ("notbuilt.c: no Makefile rule builds notbuilt.o",)


def test_directory_recursion_two_levels_and_multi_level_entries(tmp_path):
    idx = tree(
        tmp_path,
        {
            "Kbuild": "obj-$(CONFIG_NET) += net/\nobj-y += drivers/\n",
            "net/Makefile": "obj-$(CONFIG_UNIX) += unix/\nobj-y += core/deep/\n",
            "net/unix/Makefile": "obj-y += af.o\nobj-$(CONFIG_DIAG) += diag.o\n",
            "net/core/deep/Makefile": "obj-y += d.o\n",
            "drivers/Kbuild": "obj-$(CONFIG_TTY) += tty/serial/x.o\n",
        },
    )
    assert idx.condition("net/unix/af.c").formula == conj(Sym("NET"), Sym("UNIX"))
    diag = idx.condition("net/unix/diag.c").formula
    assert equivalent(diag, conj(Sym("NET"), Sym("UNIX"), Sym("DIAG")), ["NET", "UNIX", "DIAG"])
    assert idx.condition("net/core/deep/d.c").formula == Sym("NET")
    assert idx.condition("drivers/tty/serial/x.c").formula == Sym("TTY")
    orphan = tree(tmp_path, {"orphan/Makefile": "obj-y += o.o\n"}).condition("orphan/o.c")
    assert orphan.unresolved == ("orphan/: no parent Makefile descends into this directory",)


def test_conditional_blocks(tmp_path):
    idx = tree(
        tmp_path,
        {
            "Kbuild": """
ifdef CONFIG_A
obj-y += a.o
else
obj-y += nota.o
endif
ifeq ($(CONFIG_B),y)
  obj-y += b.o
endif
ifneq ($(CONFIG_C),)
obj-y += c.o
endif
ifndef CONFIG_D
obj-y += d.o
endif
ifeq ($(CONFIG_E),m)
obj-y += e.o
else ifeq ($(CONFIG_F),y)
obj-y += f.o
else
obj-y += g.o
endif # trailing comment
ifeq ($(CONFIG_SMP),y)
ifdef CONFIG_NUMA
obj-y += n.o
endif
endif
ifeq ($(CONFIG_P)$(CONFIG_Q),)
obj-y += none.o
endif
ifeq "$(CONFIG_R)" "y"
obj-y += r.o
endif
ifeq ($(SRCARCH),x86)
obj-y += x86only.o
endif
"""
        },
    )
    cond = lambda name: idx.condition(name + ".c").formula  # noqa: E731
    syms = ["E", "F"]
    assert cond("a") == Sym("A") and cond("nota") == Not(Sym("A"))
    assert cond("b") == Sym("B", "y") and cond("c") == Sym("C") and cond("d") == Not(Sym("D"))
    assert cond("e") == Sym("E", "m")
    assert equivalent(cond("f"), conj(Not(Sym("E", "m")), Sym("F", "y")), syms)
    assert equivalent(cond("g"), conj(Not(Sym("E", "m")), Not(Sym("F", "y"))), syms)
    assert cond("n") == conj(Sym("SMP", "y"), Sym("NUMA"))
    assert cond("none") == conj(Not(Sym("P")), Not(Sym("Q")))
    assert cond("r") == Sym("R", "y") and cond("x86only") == TRUE


def test_continuation_lines_and_comments(tmp_path):
    idx = tree(
        tmp_path,
        {
            "Makefile": (
                "# obj-y += commented.o\n"
                "obj-y := one.o \\\n\ttwo.o \\\n\tthree.o\n"
                "obj-$(CONFIG_X) += four.o # five.o\n"
                "define not_make_lines\nobj-y += defined.o\nendef\n"
                "foo.o: bar.h\n\tobj-y += recipe.o\n"
            )
        },
    )
    assert idx.condition("two.c").formula == TRUE and idx.condition("three.c").formula == TRUE
    assert idx.condition("four.c").formula == Sym("X")
    for name in ("five", "commented", "defined", "recipe"):
        assert isinstance(idx.condition(name + ".c").formula, Unknown), name


def test_unknown_variables_are_not_guessed(tmp_path):
    idx = tree(
        tmp_path,
        {
            "Kbuild": (
                "obj-$(WIDTH) += bits.o\n"
                "obj-y += head_$(WIDTH).o\n"
                "ifeq ($(ARCH),arm)\nobj-y += armonly.o\nendif\n"
                "obj-$(subst m,y,$(CONFIG_H)) += hv.o\n"
                "obj-$(subst y,$(CONFIG_L2TP),$(CONFIG_PPP)) += ppp.o\n"
            )
        },
    )
    bits = idx.condition("bits.c")
    assert evaluate(bits.formula, {}) is None
    assert bits.unresolved == ("Kbuild: `$(WIDTH)` is not a CONFIG symbol",)
    head = idx.condition("head_64.S")
    assert isinstance(head.formula, Unknown) and "head_$(WIDTH).o" in head.unresolved[0]
    arm = idx.condition("armonly.c")
    assert evaluate(arm.formula, {}) is None and "ifeq ($(ARCH),arm)" in arm.unresolved[0]
    assert idx.condition("hv.c") == KbuildCondition(Sym("H"), ())
    ppp = idx.condition("ppp.c").formula
    want = disj(Sym("PPP", "m"), conj(Sym("PPP", "y"), Sym("L2TP")))
    assert equivalent(ppp, want, ["PPP", "L2TP"])


def test_local_variables_includes_and_paths_outside_the_directory(tmp_path):
    idx = tree(
        tmp_path,
        {
            "Kbuild": "obj-y += sub/\n",
            "sub/Makefile": (
                "KV ?= ../other\n"
                "include $(srctree)/sub/Makefile.inc\n"
                "obj-$(CONFIG_K) += k.o\n"
                "k-y += main.o\n"
                "obj-y += ../lib/far.o\n"
            ),
            "sub/Makefile.inc": "k-y := $(KV)/ext.o\nextra-$(CONFIG_E) += e1.o\nobj-y += $(extra-y)\n",
        },
    )
    assert idx.condition("other/ext.c").formula == Sym("K")
    assert idx.condition("sub/main.c").formula == Sym("K")
    assert idx.condition("lib/far.c").formula == TRUE
    assert idx.condition("sub/e1.c").formula == Sym("E", "y")


def test_assignment_replaces_the_same_list(tmp_path):
    # fs/proc/Makefile: `proc-y := nommu.o` then `proc-$(CONFIG_MMU) := task_mmu.o`
    idx = tree(
        tmp_path,
        {
            "Kbuild": (
                "obj-y += proc.o\n"
                "proc-y := nommu.o\n"
                "proc-$(CONFIG_MMU) := task_mmu.o\n"
                "proc-y += base.o\n"
                "obj-y += dropped.o\n"
                "ifdef CONFIG_Z\nobj-y := z.o proc.o\nendif\n"
            )
        },
    )
    assert idx.condition("dropped.c").formula == Not(Sym("Z"))
    assert idx.condition("z.c").formula == Sym("Z")
    # proc.o is listed twice (before and inside the ifdef): the union is unconditional again.
    assert equivalent(idx.condition("nommu.c").formula, Not(Sym("MMU", "y")), ["MMU", "Z"])
    assert equivalent(idx.condition("task_mmu.c").formula, Sym("MMU"), ["MMU", "Z"])
    assert equivalent(idx.condition("base.c").formula, TRUE, ["MMU", "Z"])


def test_top_level_arch_lists_lib_y_and_other_architectures(tmp_path):
    idx = tree(
        tmp_path,
        {
            "Makefile": (
                "ifeq ($(KBUILD_EXTMOD),)\ncore-y :=\nlibs-y := lib/\nendif\n"
                "include $(srctree)/arch/$(SRCARCH)/Makefile\n"
            ),
            "Kbuild": "obj-y += arch/$(SRCARCH)/ $(ARCH_CORE) $(ARCH_LIB) $(ARCH_DRIVERS) kernel/\n",
            "arch/x86/Makefile": "libs-y += arch/x86/lib/\ndrivers-$(CONFIG_PCI) += arch/x86/pci/\n",
            "arch/x86/Kbuild": "obj-$(CONFIG_KVM) += kvm/\n",
            "arch/x86/kvm/Makefile": "obj-y += x86.o\n",
            "arch/x86/pci/Makefile": "obj-y += common.o\n",
            "arch/x86/lib/Makefile": "lib-y += memcpy.o\n",
            "arch/arm/kernel/Makefile": "obj-y += setup.o\n",
            "lib/Makefile": "lib-y += string.o\nobj-y += sort.o\n",
            "kernel/Makefile": "obj-y += fork.o\n",
        },
    )
    assert idx.condition("arch/x86/kvm/x86.c") == KbuildCondition(Sym("KVM"), ())
    assert idx.condition("arch/x86/pci/common.c") == KbuildCondition(Sym("PCI"), ())
    assert idx.condition("lib/sort.c") == KbuildCondition(TRUE, ())
    string = idx.condition("lib/string.c")
    assert string.formula == TRUE and "lib-y" in string.unresolved[0]
    assert idx.condition("arch/x86/lib/memcpy.S").formula == TRUE
    assert idx.condition("arch/arm/kernel/setup.c") == KbuildCondition(FALSE, ())


def test_headers_and_other_files(tmp_path):
    idx = tree(tmp_path, {"Kbuild": "obj-y += a.o\n"})
    h = idx.condition("include/linux/a.h")
    assert isinstance(h.formula, Unknown)
    assert h.unresolved == ("include/linux/a.h: headers have no Kbuild condition of their own",)
    assert isinstance(idx.condition("Kconfig").formula, Unknown)


# -- the real Linux 6.1 tree -------------------------------------------------------------------


@pytest.fixture(scope="module")
def index(kernel_srctree) -> KbuildIndex:
    return KbuildIndex(str(kernel_srctree))


@pytest.mark.parametrize(
    "source, formula",
    [
        ("fs/signalfd.c", Sym("SIGNALFD")),  # fs/Makefile: obj-$(CONFIG_SIGNALFD)
        ("fs/eventpoll.c", Sym("EPOLL")),  # fs/Makefile: obj-$(CONFIG_EPOLL)
        ("kernel/futex/core.c", Sym("FUTEX")),  # kernel/Makefile: obj-$(CONFIG_FUTEX) += futex/
        ("fs/proc/base.c", Sym("PROC_FS")),  # fs/Makefile: proc/; proc-y += base.o
        ("kernel/fork.c", TRUE),  # kernel/Makefile: obj-y = fork.o ...
        ("arch/x86/kernel/setup.c", TRUE),  # Kbuild arch/$(SRCARCH)/ -> kernel/ -> obj-y
        ("fs/proc/nommu.c", conj(Sym("PROC_FS"), Not(Sym("MMU", "y")))),  # proc-$(CONFIG_MMU) :=
        ("kernel/up.c", Not(Sym("SMP", "y"))),  # ifneq ($(CONFIG_SMP),y)
        ("virt/kvm/kvm_main.c", Sym("KVM")),  # arch/x86/kvm includes virt/kvm/Makefile.kvm
        ("arch/x86/pci/common.c", Sym("PCI")),  # arch/x86/Makefile: drivers-$(CONFIG_PCI)
        ("io_uring/io_uring.c", Sym("IO_URING")),  # Kbuild: obj-$(CONFIG_IO_URING) += io_uring/
    ],
)
def test_real_tree_exact(index, source, formula):
    assert index.condition(source) == KbuildCondition(formula, ())


def test_real_tree_recursion_through_net(index):
    c = index.condition("net/unix/af_unix.c")  # Kbuild net/, net/Makefile unix/, unix-y af_unix.o
    assert resolved(c) and definite_facts(c.formula) == {("NET", "ym"), ("UNIX", "ym")}
    assert evaluate(c.formula, {"NET": "y", "UNIX": "m"}) is True
    assert evaluate(c.formula, {"UNIX": "y"}) is False


def test_real_tree_8250(index):
    # drivers/tty/serial/Makefile: obj-$(CONFIG_SERIAL_8250) += 8250/; 8250-y := 8250_core.o.
    # drivers/Makefile has obj-y += tty/ and drivers/tty/Makefile obj-y += serial/: TTY is a Kconfig
    # dependency of SERIAL_8250, not a Kbuild condition.
    c = index.condition("drivers/tty/serial/8250/8250_core.c")
    assert resolved(c) and ("SERIAL_8250", "ym") in definite_facts(c.formula)
    assert not any(name == "TTY" for name, _ in definite_facts(c.formula))


def test_real_tree_lib_and_unresolved(index):
    string = index.condition("lib/string.c")
    assert string.formula == TRUE and string.unresolved == (
        "lib/Makefile: string.o is in lib-y (archived in lib.a, linked only if referenced)",
    )
    head = index.condition("arch/x86/kernel/head_64.S")  # obj-y += head_$(BITS).o, BITS=64
    assert head == KbuildCondition(TRUE, ())
    rt = index.condition("kernel/sched/rt.c")  # #included by kernel/sched/build_policy.c
    assert rt.unresolved == ("kernel/sched/rt.c: no Makefile rule builds rt.o",)
    assert index.condition("include/linux/fs.h").unresolved == (
        "include/linux/fs.h: headers have no Kbuild condition of their own",
    )


def test_real_tree_resolved_fraction(index, kernel_srctree):
    fractions = {}
    for top in ("kernel", "fs", "net", "mm"):
        sources = [
            os.path.relpath(os.path.join(d, f), kernel_srctree)
            for d, _dirs, files in os.walk(kernel_srctree / top)
            for f in files
            if f.endswith(".c")
        ]
        ok = sum("?(" not in str(index.condition(s).formula) for s in sources)
        fractions[top] = ok / len(sources)
        print(
            f"{top}/: {ok}/{len(sources)} .c files resolved without Unknown ({fractions[top]:.1%})"
        )
    assert min(fractions[t] for t in ("kernel", "fs", "mm")) >= 0.90
