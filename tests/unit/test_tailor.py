"""tailor (the composition process) and report: requirement sources, BUILD field checks, the
olddefconfig feedback clause, and the report's measurements."""

from __future__ import annotations

from pathlib import Path

import pytest
from pysat.solvers import Solver

from kernel_rules.domain.compose.solver import Requirement, Unsatisfiable, compose
from kernel_rules.domain.kconfig.model import KconfigModel
from kernel_rules.domain.compose.report import build_report, render_markdown, symbol_sizes
from kernel_rules.domain.kconfig.fragments import Request
from kernel_rules.domain.compose.tailor import (
    InputError,
    blocking_clause,
    composed_set,
    dropped_forced_values,
    field_requirements,
    holds,
    set_requirements,
    universe_of,
)
from tests.unit.test_kconfig_model import synthetic_kconf

KCONFIG = """
config A
\tbool "A"

config B
\tbool "B"
\tdepends on A

config N
\tint "N"
\tdefault 4

choice
\tprompt "pick"
config C1
\tbool "C1"
config C2
\tbool "C2"
endchoice
"""


@pytest.fixture
def kconf(tmp_path):
    return synthetic_kconf(tmp_path, KCONFIG)


def test_holds():
    assert holds("y", "y") and not holds("y", "m")
    assert holds("ym", "m") and holds("ym", "y") and not holds("ym", "n")
    assert holds("n", "n") and holds("n", "") and not holds("n", "m")
    assert holds("not-y", "m") and holds("not-y", "n") and not holds("not-y", "y")


def _doc(**traced_on):
    return {
        "format": "kernel_rules/config-set@1",
        "kind": "app",
        "target": "ex:app",
        "traced_on": {"source_sha256": "s", "trace_config_sha256": "t", **traced_on},
        "requirements": {
            "EPOLL": {"value": "y", "evidence": ["fs/eventpoll.c:10"]},
            "X": {"value": "not-y", "evidence": []},
        },
    }


def test_set_requirements_name_target_and_evidence():
    reqs = set_requirements("ex:app", _doc(), "s", "t")
    assert reqs == [
        Requirement("EPOLL", "y", "app ex:app (fs/eventpoll.c:10)"),
        Requirement("X", "not-y", "app ex:app"),
    ]


def test_set_of_another_source_or_trace_kernel_is_refused():
    with pytest.raises(InputError, match="traced on source other"):
        set_requirements("ex:app", _doc(source_sha256="other"), "s", "t")
    with pytest.raises(InputError, match="another trace kernel configuration"):
        set_requirements("ex:app", _doc(trace_config_sha256="x"), "s", "t")


def test_force_and_forbid_become_labelled_requirements(kconf):
    values = {}
    reqs = field_requirements(
        "ex:k", ["CONFIG_A=y", "B=y", "# CONFIG_C1 is not set", "N=8"], ["CONFIG_C2"], kconf, values
    )
    assert [str(r) for r in reqs] == [
        "CONFIG_A=y (from ex:k field `force`[0])",
        "CONFIG_B=y (from ex:k field `force`[1])",
        "CONFIG_C1=n (from ex:k field `force`[2])",
        "CONFIG_C2=n (from ex:k field `forbid`[0])",
    ]
    assert values == {"N": "8"}


@pytest.mark.parametrize(
    "force, forbid, message",
    [
        (["CONFIG_NOPE=y"], [], r"field `force`\[0\]: CONFIG_NOPE is not a Kconfig symbol"),
        (["A=m"], [], r"field `force`\[0\]: CONFIG_A is a bool; 'm' is not a value of it"),
        (["A=maybe"], [], r"field `force`\[0\]: malformed value 'maybe'"),
        ([], ["N"], r"field `forbid`\[0\]: CONFIG_N is not a bool or tristate option"),
        ([], ["GHOST"], r"field `forbid`\[0\]: CONFIG_GHOST is not a Kconfig symbol"),
    ],
)
def test_bad_force_or_forbid_names_the_field(kconf, force, forbid, message):
    with pytest.raises(InputError, match=message):
        field_requirements("ex:k", force, forbid, kconf, {})


def test_int_hex_string_force_values_are_kept_for_the_olddefconfig_check(kconf):
    forced = {}
    field_requirements("ex:k", ["CONFIG_A=y", "N=8"], [], kconf, {}, forced)
    assert forced == {"N": Request("N", "8", "ex:k field `force`[1]")}


@pytest.mark.parametrize(
    "force, message",
    [
        (['CONFIG_N="$(shell touch /tmp/x)"'], r"field `force`\[0\]: CONFIG_N: the string value"),
        (
            ['CONFIG_INITRAMFS_SOURCE="/some/host/dir"'],
            r"field `force`\[0\]: CONFIG_INITRAMFS_SOURCE=",
        ),
        (["CONFIG_A=y\nCONFIG_B=y"], r"field `force`\[0\]: .* holds a newline"),
    ],
)
def test_force_values_that_are_code_or_host_paths_are_refused(kconf, force, message):
    with pytest.raises(InputError, match=message):
        field_requirements("ex:k", force, [], kconf, {})


RANGES = """
config A
\tbool "A"

config SHIFT
\tint "shift"
\trange 12 25
\tdefault 17

config ADDR
\thex "addr"
\tdefault 0x1000

config NAME
\tstring "name"
\tdepends on A
\tdefault "x"
"""


def test_dropped_force_values_name_the_field_value_and_range(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kconf = synthetic_kconf(tmp_path, RANGES)
    forced = {
        "SHIFT": Request("SHIFT", "99", "ex:k field `force`[0]"),
        "ADDR": Request("ADDR", "0x2000", "ex:k field `force`[1]"),
        "NAME": Request("NAME", '"tailored"', "ex:k field `force`[2]"),
    }
    final = "# CONFIG_A is not set\nCONFIG_SHIFT=17\nCONFIG_ADDR=0x2000\n"
    messages = [v.message() for v in dropped_forced_values(forced, final, kconf)]
    assert messages == [
        "ex:k field `force`[0]: CONFIG_SHIFT: requested 99, got 17 (value outside its allowed "
        "range or not visible: 12..25)",
        'ex:k field `force`[2]: CONFIG_NAME: requested "tailored", got n (unmet dependency: A '
        "[A=n])",
    ]


def test_kept_force_values_are_not_violations(tmp_path):
    kconf = synthetic_kconf(tmp_path, RANGES)
    forced = {"SHIFT": Request("SHIFT", "20", "f"), "ADDR": Request("ADDR", "0x2000", "g")}
    assert dropped_forced_values(forced, "CONFIG_SHIFT=20\nCONFIG_ADDR=0x2000\n", kconf) == []


def test_universe_lets_every_choice_member_be_picked(kconf):
    assert universe_of(kconf, {"A": "y", "C1": "y", "C2": "n"}) == {"A": "y", "C1": "y", "C2": "y"}


def test_what_a_field_asks_for_joins_the_universe(kconf):
    """Debian's kernel has no IKCONFIG: `embed_config` (or a `force`) may still turn a symbol on
    that the trace kernel has off, where its dependencies allow."""
    trace = {"A": "n", "B": "n", "C1": "y"}
    universe = universe_of(kconf, trace, ["A"])
    assert universe["A"] == "y" and universe["B"] == "n"
    model = KconfigModel.build(kconf, universe, {"N": "4"})
    assert compose(model, [Requirement("A", "y", "ex:k field `embed_config=True`")])["A"] == "y"
    closed = KconfigModel.build(kconf, universe_of(kconf, trace), {"N": "4"})
    with pytest.raises(Unsatisfiable):
        compose(closed, [Requirement("A", "y", "ex:k field `embed_config=True`")])


def test_blocking_clause_excludes_exactly_that_assignment(kconf):
    model = KconfigModel.build(kconf, None, {"N": "4"})
    solution = compose(model, [Requirement("A", "y", "t")])
    assert solution["B"] == "n" and solution["A"] == "y"
    model.clauses.append(blocking_clause(model, solution, ["B"]))
    again = compose(model, [Requirement("A", "y", "t")])
    assert again["B"] == "y"  # the only other way to have A=y
    with Solver(bootstrap_with=model.clauses) as s:
        assert not s.solve(assumptions=model.assumptions_for(solution))


def test_composed_set_groups_sources_by_symbol_and_value():
    doc = composed_set(
        [Requirement("A", "y", "b"), Requirement("A", "y", "a"), Requirement("A", "ym", "c")],
        {"x": "1"},
        "size",
    )
    assert doc["requirements"] == {"A": {"y": ["a", "b"], "ym": ["c"]}}
    assert doc["format"] == "kernel_rules/requirements@1" and doc["objective"] == "size"


def test_symbol_sizes_sum_symbols_by_kind():
    nm = (
        "ffffffff81000000 0000000000000010 T _stext\n"
        "ffffffff81000010 0000000000000020 t helper\n"
        "ffffffff82000000 0000000000000008 R table\n"
        "ffffffff83000000 0000000000000004 D counter\n"
        "ffffffff84000000 0000000000000100 b buffer\n"
        "ffffffff81000000 A absolute_without_size\n"
    )
    assert symbol_sizes(nm) == {"code": 0x30, "rodata": 8, "data": 4, "bss": 0x100}


def test_report_compares_with_the_trace_kernel():
    sizes = {"vmlinux": [100, 10, 5], "bzImage": 50}
    report = build_report(
        target="ex:k",
        baseline="ex:b",
        apps=["ex:a"],
        tailored={"A": "y", "B": "n"},
        trace={"A": "y", "B": "y", "C": "m"},
        tailored_sizes=sizes,
        trace_sizes=sizes,
        tailored_symbols={"code": 10, "rodata": 1, "data": 1, "bss": 1},
        trace_symbols={"code": 20, "rodata": 1, "data": 1, "bss": 1},
        compose_stats={
            "objective": "size",
            "requirements": 3,
            "rounds": 1,
            "closure_enabled": 2,
            "seconds": {"solve": 0.1},
        },
        build_stats=None,
        app_results=[
            {
                "name": "ex:a",
                "passed": False,
                "reason": "exit 3",
                "boot_seconds": 0.5,
                "seconds": 2.0,
            }
        ],
    )
    assert report["options"]["tailored"]["enabled"] == 1
    assert report["options"]["dropped_from_trace_kernel"] == 2
    assert not report["all_apps_passed"]
    md = render_markdown(report)
    assert "| code (sum of function sizes) | 10 | 20 | 50.0% |" in md
    assert "| `ex:a` | FAILED: exit 3 | 0.5 | 2.0 |" in md


def test_formulas_parse_and_evaluate():
    from kernel_rules.domain.compose.solver import formula_holds, parse_formula

    tree = parse_formula("!(INPUT_LEDS && LEDS_TRIGGERS=y) || X=m")
    assert tree == (
        "or",
        ("not", ("and", ("sym", "INPUT_LEDS", "ym"), ("sym", "LEDS_TRIGGERS", "y"))),
        ("sym", "X", "m"),
    )
    assert formula_holds(tree, {"INPUT_LEDS": "y"})
    assert not formula_holds(tree, {"INPUT_LEDS": "m", "LEDS_TRIGGERS": "y"})
    assert formula_holds(tree, {"INPUT_LEDS": "m", "LEDS_TRIGGERS": "y", "X": "m"})
    for bad in ("!?(defined(FOO_H))", "A &&", "(A || B", "A B"):
        with pytest.raises(ValueError):
            parse_formula(bad)


def test_condition_formulas_are_solved_and_explained(kconf):
    """A set's condition `A || C2`: C2 would do, but forbidding it leaves A; forbidding A too
    is a conflict naming the formula."""
    from kernel_rules.domain.compose.solver import Unsatisfiable

    doc = _doc()
    doc["requirements"] = {}
    doc["conditions"] = [
        {"formula": "A || C2", "evidence": ["x.c:1"]},
        {"formula": "!?(defined(X_H))", "evidence": []},
    ]
    reqs = set_requirements("ex:app", doc, "s", "t")
    assert [str(r) for r in reqs] == ["A || C2 (from app ex:app (x.c:1))"]
    model = KconfigModel.build(kconf, None, {"N": "4"})
    forbid_c2 = [Requirement("C2", "n", "forbid")]
    assert compose(model, reqs + forbid_c2)["A"] == "y"
    with pytest.raises(Unsatisfiable) as e:
        compose(model, reqs + forbid_c2 + [Requirement("A", "n", "forbid A")])
    assert "A || C2  <- app ex:app (x.c:1)" in str(e.value)
    assert composed_set(reqs, {}, "size")["conditions"] == {"A || C2": ["app ex:app (x.c:1)"]}


MODULES_KCONFIG = """
config MODULES
\tbool "modules"
\tmodules

config MODULE_SIG
\tbool "sign"
\tdepends on MODULES

config KPROBES
\tbool "kprobes"
\tdepends on MODULES

config TRACER
\tbool "tracer"
\tdepends on KPROBES

config NET
\tbool "net"

config DRV
\ttristate "driver"
\tdepends on NET
"""


def test_no_modules_builds_module_code_in_and_relaxes_what_needs_modules(tmp_path):
    from kernel_rules.domain.compose.tailor import NO_MODULES, drop_incompatible, without_modules

    kconf = synthetic_kconf(tmp_path, MODULES_KCONFIG)
    trace = {
        "MODULES": "y",
        "MODULE_SIG": "y",
        "KPROBES": "y",
        "TRACER": "y",
        "NET": "y",
        "DRV": "m",
    }
    traced = [
        Requirement("MODULES", "y", "baseline b (kernel/module/main.c:1)"),
        Requirement("MODULE_SIG", "y", "baseline b (kernel/module/signing.c:1)"),
        Requirement("TRACER", "y", "baseline b (kernel/trace/t.c:1)"),
        Requirement("DRV", "m", "baseline b (drivers/drv.c:1)"),
        Requirement("DRV", "not-y", "baseline b (net/core/dev.c:9)"),
        Requirement("NET", "y", "baseline b (net/core/dev.c:1)"),
    ]
    kept, relaxed = without_modules(traced, kconf, trace)
    assert kept == [
        Requirement("TRACER", "y", "baseline b (kernel/trace/t.c:1)"),
        Requirement("DRV", "ym", "baseline b (drivers/drv.c:1)"),
        Requirement("NET", "y", "baseline b (net/core/dev.c:1)"),
    ]
    assert [r["requirement"].split(" (from")[0] for r in relaxed] == [
        "CONFIG_MODULES=y",
        "CONFIG_MODULE_SIG=y",
        "CONFIG_DRV=m",
        "CONFIG_DRV=not-y",
    ]
    # TRACER needs KPROBES, which needs MODULES: only the model can tell
    model = KconfigModel.build(kconf, trace, {})
    policy = Requirement("MODULES", "n", NO_MODULES)
    kept, dropped = drop_incompatible(model, kept, [policy])
    assert [r.symbol for r in kept] == ["DRV", "NET"]
    assert dropped == [
        {"requirement": str(traced[2]), "why": f"cannot hold with {policy} ({NO_MODULES})"}
    ]
    solution = compose(model, kept + [policy])
    assert (solution["MODULES"], solution["DRV"], solution["NET"]) == ("n", "y", "y")


def test_soft_items_by_mode():
    from kernel_rules.domain.compose.tailor import soft_items

    reqs = [
        Requirement("A", "y", "baseline b (x.c:1)"),
        Requirement("B", "ym", "baseline b"),
        Requirement("B", "y", "app a (y.c:2)"),
        Requirement("HIDDEN", "y", "baseline b"),
        Requirement("A || B", "holds", "baseline b"),
        Requirement("A", "n", "app c"),
    ]
    assert soft_items(reqs, [], "baseline") == ["A", "A || B", "HIDDEN"]
    # `A=n` (app c wants A off) is soft in traced mode only: an app's requirement
    assert soft_items(reqs, [], "traced") == ["A", "A || B", "A=n", "B", "HIDDEN"]
    # with phases (config-set@2), only what ran during kernel initialisation alone is soft
    assert soft_items(
        reqs, [], "baseline", {"A": ("init",), "A || B": ("boot", "init"), "HIDDEN": ("init",)}
    ) == ["A", "HIDDEN"]
    assert soft_items(reqs, [], "traced", {"A": ("boot",)}) == [
        "A",
        "A || B",
        "A=n",
        "B",
        "HIDDEN",
    ]
    # what `force` asks for is never soft
    assert soft_items(reqs, [Requirement("A", "y", "t field `force`[0]")], "traced") == [
        "A || B",
        "A=n",
        "B",
        "HIDDEN",
    ]


def test_the_guest_format_is_hard(tmp_path):
    """The product's guests boot a gzip'd initramfs whose /init is a script run by an ELF
    busybox: those options are hard requirements, never soft, whatever the traces say."""
    from kernel_rules.domain.compose.tailor import guest_format_requirements, soft_items

    kconf = synthetic_kconf(
        tmp_path,
        "".join(f'config {n}\n\tbool "{n}"\n\n' for n in ("BLK_DEV_INITRD", "RD_GZIP", "X")),
    )
    reqs = guest_format_requirements(kconf)
    assert [(r.symbol, r.value) for r in reqs] == [("BLK_DEV_INITRD", "y"), ("RD_GZIP", "y")]
    assert all(r.source.startswith("kernel_rules guest format: ") for r in reqs)
    traced = [Requirement(n, "y", "baseline b") for n in ("RD_GZIP", "X")]
    assert soft_items(traced, reqs, "traced") == ["X"]


def test_drop_file_must_be_a_list_of_strings(tmp_path):
    from kernel_rules.domain.compose.tailor import read_drop_file

    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text('["A", "A || B"]')
    bad.write_text('{"A": 1}')
    assert read_drop_file(str(good)) == {"A", "A || B"}
    assert read_drop_file(None) == frozenset()
    with pytest.raises(InputError, match="bad.json"):
        read_drop_file(str(bad))


def test_item_phases_reads_format_2_and_nothing_from_format_1():
    from kernel_rules.domain.compose.tailor import item_phases

    doc = {
        "requirements": {"A": {"value": "y", "phases": ["init"]}, "B": {"value": "y"}},
        "conditions": [{"formula": "A || B", "phases": ["boot", "init"]}],
    }
    assert item_phases(doc) == {"A": ("init",), "A || B": ("boot", "init")}
    assert item_phases({"requirements": {"A": {"value": "y"}}, "conditions": []}) == {}


TINY_KCONFIG = """
config SMP
\tbool "SMP"
\tdefault y

config TINY_RCU
\tdef_bool !SMP

config EMBEDDED
\tbool "embedded"

choice
\tprompt "Compiler optimization level"
config CC_OPTIMIZE_FOR_PERFORMANCE
\tbool "-O2"
config CC_OPTIMIZE_FOR_SIZE
\tbool "-Os"
endchoice

choice
\tprompt "Debug information"
config DEBUG_INFO_NONE
\tbool "none"
config DEBUG_INFO_DWARF5
\tbool "dwarf5"
endchoice

choice
\tprompt "allocator"
config SLUB
\tbool "SLUB"
config SLOB
\tbool "SLOB"
\tdepends on EMBEDDED
endchoice
"""


def _tiny_tree(tmp_path: Path) -> Path:
    """A source tree with tinyconfig's fragments (the allocator's pick needs tiny-base's
    EMBEDDED, as SLOB needs EXPERT in 6.1)."""
    (tmp_path / "kernel/configs").mkdir(parents=True)
    (tmp_path / "arch/x86/configs").mkdir(parents=True)
    (tmp_path / "kernel/configs/tiny-base.config").write_text("CONFIG_EMBEDDED=y\n")
    (tmp_path / "kernel/configs/tiny.config").write_text(
        "# CONFIG_CC_OPTIMIZE_FOR_PERFORMANCE is not set\nCONFIG_CC_OPTIMIZE_FOR_SIZE=y\n"
    )
    (tmp_path / "arch/x86/configs/tiny.config").write_text("CONFIG_SLOB=y\n")
    return tmp_path


def test_tinyconfig_is_allnoconfig_plus_its_fragments(tmp_path):
    from kernel_rules.domain.kconfig.tinyconfig import tinyconfig

    kconf = synthetic_kconf(tmp_path, TINY_KCONFIG)
    picks, on = tinyconfig(kconf, str(_tiny_tree(tmp_path)), "x86_64")
    assert picks["CC_OPTIMIZE_FOR_PERFORMANCE"] == "CC_OPTIMIZE_FOR_SIZE"
    assert picks["SLUB"] == picks["SLOB"] == "SLOB"
    assert "SMP" not in on and {"TINY_RCU", "EMBEDDED", "CC_OPTIMIZE_FOR_SIZE", "SLOB"} <= on


def test_choice_picks_that_differ_from_tinyconfig_are_soft_items(tmp_path):
    """A distribution's picks (-O2, SLUB) are items `pick:SYMBOL`; the debug-info choice is left
    to the `debug_info` field; a pick tinyconfig shares is no item."""
    from kernel_rules.domain.compose.tailor import choice_items
    from kernel_rules.domain.kconfig.tinyconfig import tinyconfig

    kconf = synthetic_kconf(tmp_path, TINY_KCONFIG)
    picks, _ = tinyconfig(kconf, str(_tiny_tree(tmp_path)), "x86_64")
    distro = {"SMP": "y", "CC_OPTIMIZE_FOR_PERFORMANCE": "y", "SLUB": "y", "DEBUG_INFO_DWARF5": "y"}
    assert choice_items(kconf, distro, picks) == {
        "pick:CC_OPTIMIZE_FOR_PERFORMANCE": "CC_OPTIMIZE_FOR_SIZE",
        "pick:SLUB": "SLOB",
    }
    tiny = {"CC_OPTIMIZE_FOR_SIZE": "y", "SLOB": "y", "DEBUG_INFO_NONE": "y"}
    assert choice_items(kconf, tiny, picks) == {}


def test_requirements_that_an_option_be_off_are_soft_and_left_out_by_their_item():
    from kernel_rules.domain.compose.tailor import left_out_by, soft_items

    reqs = [
        Requirement("X86_MPPARSE", "n", "baseline b (arch/x86/kernel/acpi/boot.c:1816)"),
        Requirement("INLINE_READ_UNLOCK", "n", "app a (kernel/locking/spinlock.c:259)"),
        Requirement("NET", "y", "baseline b"),
    ]
    assert soft_items(reqs, [], "traced") == ["INLINE_READ_UNLOCK=n", "NET", "X86_MPPARSE=n"]
    # baseline mode: an app's requirement stays hard, and so does one seen after kernel init
    assert soft_items(reqs, [], "baseline") == ["NET", "X86_MPPARSE=n"]
    assert soft_items(reqs, [], "baseline", {"X86_MPPARSE": ("boot",), "NET": ("init",)}) == ["NET"]
    # a `forbid` is never soft
    forbid = [Requirement("X86_MPPARSE", "n", "t field `forbid`[0]")]
    assert soft_items(reqs, forbid, "traced") == ["INLINE_READ_UNLOCK=n", "NET"]
    drop = frozenset({"X86_MPPARSE=n"})
    assert [left_out_by(r, drop) for r in reqs] == [True, False, False]
    assert [left_out_by(r, frozenset({"NET"})) for r in reqs] == [False, False, True]
