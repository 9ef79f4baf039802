import time

from kernel_rules.domain.map.conditions import (
    FALSE,
    TRUE,
    And,
    Not,
    Or,
    Sym,
    Unknown,
    conj,
    definite_facts,
    evaluate,
    neg,
)
from kernel_rules.domain.map.cpp_conditions import (
    definite_facts_for,
    expression_condition,
    line_conditions,
)


def conds(src, in_module=False):
    """{marker: condition} for every line `m<name>` of `src` (line numbers found by marker)."""
    lc = line_conditions(src, in_module)
    return {
        line.strip(): lc.condition(i)
        for i, line in enumerate(src.split("\n"), 1)
        if line.strip().startswith("m") and line.strip()[1:].isalnum()
    }


def expr(text, in_module=False):
    return expression_condition(text, in_module)


X, XM, XYM = Sym("X", "y"), Sym("X", "m"), Sym("X", "ym")
A, B, C = Sym("A", "y"), Sym("B", "y"), Sym("C", "y")


# --- #ifdef / #ifndef / #if / #elif / #else / nesting ---------------------------------------


def test_ifdef_ifndef_and_the_module_form():
    src = (
        "m0\n#ifdef CONFIG_X\nm1\n#endif\n#ifndef CONFIG_X\nm2\n#endif\n"
        "#ifdef CONFIG_X_MODULE\nm3\n#endif\nm4\n"
    )
    assert conds(src) == {"m0": TRUE, "m1": X, "m2": Not(X), "m3": XM, "m4": TRUE}


def test_if_elif_else_chain_negates_every_earlier_branch():
    src = (
        "#if defined(CONFIG_A)\nm1\n#elif defined CONFIG_B\nm2\n#elif IS_ENABLED(CONFIG_C)\n"
        "m3\n#else\nm4\n#endif\n"
    )
    c = conds(src)
    assert c["m1"] == A
    assert c["m2"] == And((Not(A), B))
    assert c["m3"] == And((Not(A), Not(B), Sym("C", "ym")))
    assert c["m4"] == And((Not(A), Not(B), Not(Sym("C", "ym"))))


def test_ifdef_else():
    assert conds("#ifdef CONFIG_A\nm1\n#else\nm2\n#endif\n") == {"m1": A, "m2": Not(A)}


def test_nested_groups_conjoin_the_whole_stack():
    src = (
        "#ifdef CONFIG_A\nm1\n#ifndef CONFIG_B\nm2\n#if CONFIG_C\nm3\n#else\nm4\n#endif\n"
        "m5\n#endif\nm6\n#else\nm7\n#endif\nm8\n"
    )
    c = conds(src)
    assert c["m1"] == A
    assert c["m2"] == And((A, Not(B)))
    assert c["m3"] == And((A, Not(B), C))
    assert c["m4"] == And((A, Not(B), Not(C)))
    assert c["m5"] == And((A, Not(B)))
    assert c["m6"] == A
    assert c["m7"] == Not(A)
    assert c["m8"] == TRUE


def test_directive_lines_get_the_enclosing_region():
    src = "#ifdef CONFIG_A\n#ifdef CONFIG_B\nx\n#elif CONFIG_C\ny\n#else\nz\n#endif\n#endif\n"
    lc = line_conditions(src)
    assert [lc.condition(n) for n in range(1, 10)] == [
        TRUE,
        A,
        And((A, B)),
        A,
        And((A, Not(B), C)),
        A,
        And((A, Not(B), Not(C))),
        A,
        TRUE,
    ]


def test_long_elif_chains_stay_linear():
    src = "".join(f"#{'if' if i == 0 else 'elif'} defined(CONFIG_S{i})\nm{i}\n" for i in range(40))
    src += "#else\nmelse\n#endif\n"
    c = conds(src)
    assert c["m39"] == conj(*(Not(Sym(f"S{i}", "y")) for i in range(39)), Sym("S39", "y"))
    assert len(c["melse"].args) == 40


def test_if_0_and_if_1():
    c = conds("#if 0\nm1\n#else\nm2\n#endif\n#if 1\nm3\n#endif\n#if 0x0UL\nm4\n#endif\n")
    assert c == {"m1": FALSE, "m2": TRUE, "m3": TRUE, "m4": FALSE}
    assert conds("#ifdef CONFIG_A\n#if 0\nm1\n#endif\n#endif\n")["m1"] == FALSE


# --- expressions ------------------------------------------------------------------------------


def test_is_macros():
    assert expr("IS_ENABLED(CONFIG_X)") == XYM
    assert expr("IS_BUILTIN(CONFIG_X)") == X
    assert expr("IS_MODULE(CONFIG_X)") == XM
    assert expr("IS_REACHABLE(CONFIG_X)") == X
    assert expr("IS_REACHABLE(CONFIG_X)", in_module=True) == XYM
    assert expr("IS_ENABLED( CONFIG_X )") == XYM
    src = "#if IS_REACHABLE(CONFIG_X)\nm1\n#endif\n"
    assert conds(src, in_module=False)["m1"] == X
    assert conds(src, in_module=True)["m1"] == XYM


def test_defined_forms_and_bare_symbols():
    assert expr("defined(CONFIG_X)") == X
    assert expr("defined CONFIG_X") == X
    assert expr("defined ( CONFIG_X_MODULE )") == XM
    assert expr("CONFIG_X") == X
    assert expr("!CONFIG_X") == Not(X)
    assert expr("CONFIG_X_MODULE") == XM
    assert expr("!defined(CONFIG_X)") == Not(X)


def test_operators_follow_c_precedence():
    assert expr("CONFIG_A || CONFIG_B && CONFIG_C") == Or((A, And((B, C))))
    assert expr("(CONFIG_A || CONFIG_B) && CONFIG_C") == And((Or((A, B)), C))
    assert expr("!(CONFIG_A && !CONFIG_B)") == Not(And((A, Not(B))))
    assert expr("!!CONFIG_A") == A
    assert expr("CONFIG_A && 1") == A
    assert expr("CONFIG_A || 1") == TRUE
    assert expr("defined(CONFIG_A) && 0") == FALSE


def test_comparisons_and_arithmetic_are_unknown():
    assert expr("CONFIG_NR_CPUS > 1") == Unknown("CONFIG_NR_CPUS > 1")
    assert expr("LINUX_VERSION_CODE >= KERNEL_VERSION(4, 2, 0)") == Unknown(
        "LINUX_VERSION_CODE >= KERNEL_VERSION(4, 2, 0)"
    )
    assert expr("defined(CONFIG_A) && __GNUC__ >= 5") == And((A, Unknown("__GNUC__ >= 5")))
    assert expr("CONFIG_A || (CONFIG_HZ   %  100) == 0") == Or(
        (A, Unknown("(CONFIG_HZ % 100) == 0"))
    )
    assert expr("CONFIG_A == 1 && CONFIG_B") == And((Unknown("CONFIG_A == 1"), B))
    assert expr("-CONFIG_A") == Unknown("-CONFIG_A")
    assert expr("CONFIG_A ? CONFIG_B : CONFIG_C") == Unknown("CONFIG_A ? CONFIG_B : CONFIG_C")
    assert expr("IS_ENABLED(CONFIG_A) + IS_ENABLED(CONFIG_B) > 1") == Unknown(
        "IS_ENABLED(CONFIG_A) + IS_ENABLED(CONFIG_B) > 1"
    )


def test_non_config_macros_are_unknown_never_guessed():
    assert expr("__KERNEL__") == Unknown("__KERNEL__")
    assert expr("defined(__ASSEMBLY__)") == Unknown("defined(__ASSEMBLY__)")
    assert expr("!defined(MODULE)") == Not(Unknown("defined(MODULE)"))
    assert expr("defined(__x86_64__) && defined(CONFIG_X)") == And(
        (Unknown("defined(__x86_64__)"), X)
    )
    assert expr("CC_HAVE_ASM_GOTO") == Unknown("CC_HAVE_ASM_GOTO")
    assert expr("IS_ENABLED(MODULE)") == Unknown("IS_ENABLED(MODULE)")
    assert expr("__has_attribute(__fallthrough__)") == Unknown("__has_attribute(__fallthrough__)")
    assert expr("CONFIG_") == Unknown("CONFIG_")
    c = conds("#ifdef __KERNEL__\nm1\n#endif\n#ifndef MODULE\nm2\n#endif\n", in_module=True)
    assert c == {"m1": Unknown("defined(__KERNEL__)"), "m2": Not(Unknown("defined(MODULE)"))}


def test_malformed_expressions_become_unknown():
    assert expr("defined(") == Unknown("defined(")
    assert expr("CONFIG_A &&") == Unknown("CONFIG_A &&")
    assert expr("") == Unknown("<empty>")
    assert conds("#if\nm1\n#endif\n#ifdef\nm2\n#endif\n") == {
        "m1": Unknown("<empty>"),
        "m2": Unknown("#ifdef"),
    }


# --- lexical handling -------------------------------------------------------------------------


def test_continuation_lines_in_directives():
    src = "#if defined(CONFIG_A) && \\\n    defined(CONFIG_B)\nm1\n#endif\nm2\n"
    lc = line_conditions(src)
    assert [lc.condition(n) for n in range(1, 6)] == [TRUE, TRUE, And((A, B)), TRUE, TRUE]


def test_comments_in_and_around_directives():
    src = (
        "/* #ifdef CONFIG_A\nm1\n#endif */\n"  # a commented-out group
        "#ifdef CONFIG_B /* trailing */\nm2\n#endif // CONFIG_B\n"
        "#if defined(CONFIG_A) /* spans\n   lines */ || defined(CONFIG_C)\nm3\n#endif\n"
        "# /* odd */ ifdef CONFIG_C\nm4\n#endif\n"
        "#ifdef CONFIG_A // comment \\\ncontinued\nm5\n#endif\n"
        "/* a\n   b */ #ifdef CONFIG_B\nm6\n#endif\n"
    )
    c = conds(src)
    assert c == {"m1": TRUE, "m2": B, "m3": Or((A, C)), "m4": C, "m5": A, "m6": B}


def test_indented_directives_and_blanks_after_hash():
    src = "  #  ifdef CONFIG_A\nm1\n\t# if CONFIG_B\nm2\n  #  endif\n #\telse\nm3\n# endif\n"
    assert conds(src) == {"m1": A, "m2": And((A, B)), "m3": Not(A)}


def test_literals_and_other_directives_do_not_change_conditions():
    src = (
        'const char *s = "#ifdef CONFIG_A /*";\nm1\nchar c = \'"\';\n'
        "#define CONFIG_B 1\n#include <linux/x.h>\n#undef CONFIG_B\n#error don't\n"
        "#pragma once\nm2\n#if CONFIG_B\nm3\n#endif\n"
        "#define M(x) \\\n#ifdef CONFIG_A\nm4\n"
    )  # a macro body, not a directive
    assert conds(src) == {"m1": TRUE, "m2": TRUE, "m3": B, "m4": TRUE}


def test_crlf_line_ends():
    assert conds("#ifdef CONFIG_A\r\nm1\r\n#endif\r\nm2\r\n") == {"m1": A, "m2": TRUE}


def test_unbalanced_directives_are_lenient():
    lc = line_conditions("#endif\nx\n#else\n#ifdef CONFIG_A\ny\n")
    assert [lc.condition(n) for n in range(1, 6)] == [TRUE, TRUE, TRUE, TRUE, A]
    assert lc.condition(100) == A  # an open group extends to the end (and beyond)
    assert len(lc.problems) == 3
    lc = line_conditions("#ifdef CONFIG_A\n#else\n#else\nz\n#endif\n")
    assert lc.condition(4) == FALSE  # a second #else: another branch, that cannot hold
    assert lc.problems == ("line 3: #else after #else",)


def test_regions_and_line_count():
    lc = line_conditions("a\n#ifdef CONFIG_A\nb\nc\n#endif\n")
    assert lc.line_count == 5
    assert lc.regions() == [(1, 2, TRUE), (3, 4, A), (5, 5, TRUE)]
    assert line_conditions("").regions() == []


def test_evaluate_agrees_with_autoconf_semantics():
    lc = line_conditions("#if IS_ENABLED(CONFIG_A) && !CONFIG_B\nx\n#endif\n")
    assert evaluate(lc.condition(2), {"A": "m", "B": "m"}) is True  # CONFIG_B undefined for =m
    assert evaluate(lc.condition(2), {"A": "m", "B": "y"}) is False


# --- definite facts -----------------------------------------------------------------------------


def test_definite_facts_for_reads_ifndef_by_symbol_type():
    f = line_conditions("#ifndef CONFIG_X\nx\n#endif\n").condition(2)
    assert f == Not(X)
    assert definite_facts(f) == frozenset()
    assert definite_facts_for(f, tristate=lambda s: False) == {("X", "n")}
    assert definite_facts_for(f, tristate=lambda s: True) == {("X", "not-y")}


def test_definite_facts_for_combines_with_the_generic_facts():
    f = line_conditions(
        "#ifdef CONFIG_A\n#ifndef CONFIG_X\n#if !IS_ENABLED(CONFIG_B) && "
        "(CONFIG_C || CONFIG_D)\nx\n#endif\n#endif\n#endif\n"
    ).condition(4)
    facts = definite_facts_for(f, tristate=lambda s: s == "T")
    assert facts == {("A", "y"), ("X", "n"), ("B", "n")}
    assert definite_facts_for(Or((Not(X), A)), tristate=lambda s: False) == frozenset()
    assert definite_facts_for(neg(Sym("X", "m")), tristate=lambda s: False) == frozenset()


# --- the real kernel tree ------------------------------------------------------------------------


def _read(path):
    return path.read_text(encoding="utf-8", errors="surrogateescape")


def test_real_kernel_fork_c(kernel_srctree):
    text = _read(kernel_srctree / "kernel/fork.c")
    lines = text.split("\n")
    lc = line_conditions(text)

    def after(directive, occurrence=0):
        """The 1-based number of the line after the `occurrence`th line equal to `directive`."""
        hits = [i for i, text in enumerate(lines, 1) if text.strip() == directive]
        return hits[occurrence] + 1

    mmu = after("#ifdef CONFIG_MMU")
    assert lc.condition(mmu) == Sym("MMU", "y")
    assert lc.condition(after("#endif /* CONFIG_MMU */") - 1) == TRUE  # the #endif line itself
    vmap = after("#  ifdef CONFIG_VMAP_STACK")
    outer = And(
        (
            Not(Sym("ARCH_THREAD_STACK_ALLOCATOR", "y")),
            Or((Unknown("THREAD_SIZE >= PAGE_SIZE"), Sym("VMAP_STACK", "y"))),
        )
    )
    assert lc.condition(vmap) == conj(outer, Sym("VMAP_STACK", "y"))
    assert lc.condition(after("#  else /* !CONFIG_VMAP_STACK */")) == conj(
        outer, Not(Sym("VMAP_STACK", "y"))
    )
    hp = after("#if defined(CONFIG_TRANSPARENT_HUGEPAGE) && !USE_SPLIT_PMD_PTLOCKS")
    assert lc.condition(hp) == And(
        (Sym("TRANSPARENT_HUGEPAGE", "y"), Not(Unknown("USE_SPLIT_PMD_PTLOCKS")))
    )
    assert definite_facts_for(lc.condition(vmap), lambda s: False) == {
        ("ARCH_THREAD_STACK_ALLOCATOR", "n"),
        ("VMAP_STACK", "y"),
    }
    assert lc.problems == ()


def test_every_c_file_under_kernel_and_fs_parses(kernel_srctree):
    files = sorted(p for d in ("kernel", "fs") for p in (kernel_srctree / d).rglob("*.c"))
    assert len(files) > 1000
    start = time.perf_counter()
    unbalanced = []
    for path in files:
        lc = line_conditions(_read(path))
        lc.condition(1)
        lc.condition(lc.line_count or 1)
        if lc.problems:
            unbalanced.append(path)
    elapsed = time.perf_counter() - start
    print(f"parsed {len(files)} files under kernel/ and fs/ in {elapsed:.2f} s")
    assert unbalanced == []
