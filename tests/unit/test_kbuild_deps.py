from kernel_rules.domain.kbuild_deps import changed_symbols, lower_bound, object_symbols


def test_object_symbols_reads_fixdep_output(tmp_path):
    (tmp_path / "fs").mkdir()
    (tmp_path / "fs/.signalfd.o.cmd").write_text(
        "deps_fs/signalfd.o := \\\n  $(wildcard include/config/SIGNALFD) \\\n"
        "  $(wildcard include/config/FUTEX) \\\n  include/linux/sched.h \\\n")
    (tmp_path / "fs/.other.o.cmd").write_text("deps_fs/other.o := \\\n")
    assert object_symbols(str(tmp_path)) == {"fs/signalfd.o": {"SIGNALFD", "FUTEX"},
                                             "fs/other.o": set()}


def test_lower_bound_has_dependents_new_objects_and_image_assembly():
    before = {"a.o": {"X"}, "b.o": {"Y"}, "arch/x86/boot/header.o": set()}
    after = iter(["a.o", "b.o", "c.o", "arch/x86/boot/header.o"])  # any iterable, even one-shot
    assert lower_bound(before, {"X"}, after) == {"a.o", "c.o", "arch/x86/boot/header.o"}


def test_changed_symbols_treats_absent_as_n():
    assert changed_symbols({"A": "y", "B": "n"}, {"A": "m", "C": "n"}) == {"A"}
