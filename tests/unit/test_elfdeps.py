import os
import shutil

import pytest

from kernel_rules.domain.guest.elfdeps import MissingLibrary, NotAnElf, closure


def test_dynamic_program_closure_includes_loader_and_libc():
    sqlite = shutil.which("sqlite3", path="/usr/bin")
    if not sqlite:
        pytest.fail("sqlite3 missing: run ./pants --version as root to install it")
    files = closure([sqlite])
    names = {os.path.basename(f) for f in files}
    assert sqlite in files
    assert "libc.so.6" in names and "libsqlite3.so.0" in names
    assert any(n.startswith("ld-linux-x86-64") for n in names)


def test_static_program_needs_nothing_else():
    assert closure(["/bin/busybox"]) == ["/bin/busybox"]


def test_not_an_elf(tmp_path):
    script = tmp_path / "s.sh"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(NotAnElf):
        closure([str(script)])


def test_missing_library_names_the_program(tmp_path):
    prog = tmp_path / "prog"
    shutil.copy("/usr/bin/sqlite3", prog)
    with pytest.raises(MissingLibrary, match="needs libsqlite3"):
        closure([str(prog)], search=[str(tmp_path)])
