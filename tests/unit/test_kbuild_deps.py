from kernel_rules.domain.build.kbuild_deps import changed_symbols, lower_bound, object_symbols


def test_object_symbols_reads_fixdep_output(tmp_path):
    (tmp_path / "fs").mkdir()
    (tmp_path / "fs/.signalfd.o.cmd").write_text(
        "deps_fs/signalfd.o := \\\n  $(wildcard include/config/SIGNALFD) \\\n"
        "  $(wildcard include/config/FUTEX) \\\n  include/linux/sched.h \\\n"
    )
    (tmp_path / "fs/.other.o.cmd").write_text("deps_fs/other.o := \\\n")
    assert object_symbols(str(tmp_path)) == {
        "fs/signalfd.o": {"SIGNALFD", "FUTEX"},
        "fs/other.o": set(),
    }


def test_lower_bound_has_dependents_new_objects_and_image_assembly():
    before = {"a.o": {"X"}, "b.o": {"Y"}, "arch/x86/boot/header.o": set()}
    after = iter(["a.o", "b.o", "c.o", "arch/x86/boot/header.o"])  # any iterable, even one-shot
    assert lower_bound(before, {"X"}, after) == {"a.o", "c.o", "arch/x86/boot/header.o"}


def test_changed_symbols_treats_absent_as_n():
    assert changed_symbols({"A": "y", "B": "n"}, {"A": "m", "C": "n"}) == {"A"}


def test_objects_depending_on_a_regenerated_header_are_in_the_bound(tmp_path):
    from kernel_rules.domain.build.kbuild_deps import changed_files, generated_digests, object_deps

    (tmp_path / "arch/x86/entry").mkdir(parents=True)
    (tmp_path / "include/generated").mkdir(parents=True)
    (tmp_path / "include/generated/asm-offsets.h").write_text("#define TASK_x 8\n")
    (tmp_path / "arch/x86/entry/.entry_64.o.cmd").write_text(
        "deps := \\\n  include/generated/asm-offsets.h \\\n"
    )
    before_digests = generated_digests(str(tmp_path))
    deps = object_deps(str(tmp_path))
    assert deps == {"arch/x86/entry/entry_64.o": (set(), {"include/generated/asm-offsets.h"})}
    (tmp_path / "include/generated/asm-offsets.h").write_text("#define TASK_x 16\n")
    moved = changed_files(before_digests, generated_digests(str(tmp_path)))
    assert moved == {"include/generated/asm-offsets.h"}
    assert lower_bound(deps, {"FUTEX"}, ["arch/x86/entry/entry_64.o"], moved) == {
        "arch/x86/entry/entry_64.o"
    }
    assert lower_bound(deps, {"FUTEX"}, ["arch/x86/entry/entry_64.o"]) == set()


def test_the_vdso_image_is_in_the_bound_when_a_vdso_object_is():
    before = {
        "arch/x86/entry/vdso/vclock_gettime.o": ({"EVENTFD"}, set()),
        "arch/x86/entry/vdso/vdso-image-64.o": (set(), set()),
        "fs/open.o": (set(), set()),
    }
    after = list(before)
    assert lower_bound(before, {"EVENTFD"}, after) == {
        "arch/x86/entry/vdso/vclock_gettime.o",
        "arch/x86/entry/vdso/vdso-image-64.o",
    }
    assert lower_bound(before, {"SIGNALFD"}, after) == set()


def test_the_embedded_configuration_is_in_the_bound_of_any_change():
    before = {"kernel/configs.o": set(), "a.o": {"X"}}
    assert lower_bound(before, {"LEAF"}, ["kernel/configs.o", "a.o"]) == {"kernel/configs.o"}
    assert lower_bound(before, {"LEAF"}, ()) == {"kernel/configs.o"}  # the estimate, too
    assert lower_bound(before, set(), ["kernel/configs.o", "a.o"]) == set()


def test_an_object_whose_compile_command_changed_is_in_the_bound(tmp_path):
    """DEBUG_INFO adds -g to every command: Kbuild's if_changed recompiles objects whose sources
    test no changed symbol, and so must any correct build."""
    from kernel_rules.domain.build.kbuild_deps import changed_commands, object_commands

    (tmp_path / "lib").mkdir()
    cmd = tmp_path / "lib/.string.o.cmd"
    cmd.write_text("cmd_lib/string.o := gcc -O2 -c lib/string.c\n\ndeps_lib/string.o := \\\n")
    (tmp_path / "lib/.sort.o.cmd").write_text("cmd_lib/sort.o := gcc -O2 -c lib/sort.c\n")
    before = object_commands(str(tmp_path))
    cmd.write_text("cmd_lib/string.o := gcc -O2 -g -c lib/string.c\n\ndeps_lib/string.o := \\\n")
    moved = changed_commands(before, object_commands(str(tmp_path)))
    assert moved == {"lib/string.o"}
    deps = {"lib/string.o": set(), "lib/sort.o": set()}
    objects = ["lib/string.o", "lib/sort.o"]
    assert lower_bound(deps, {"DEBUG_INFO"}, objects, (), moved) == {"lib/string.o"}
    assert lower_bound(deps, {"DEBUG_INFO"}, objects) == set()
