import gzip
import shutil
import subprocess

import pytest

from kernel_rules.domain.guest.initramfs import (
    char_device,
    cpio_newc,
    directory,
    gzip_deterministic,
    is_static_elf,
    regular,
    symlink,
)


def _entries():
    return [
        directory("bin"),
        regular("bin/tool", b"#!/bin/sh\necho hi\n", executable=True),
        symlink("bin/sh", "tool"),
        char_device("dev/console", 5, 1),
        directory("dev"),
        regular("init", b"x" * 5),
    ]


def test_same_entries_give_identical_bytes_in_any_order():
    a = gzip_deterministic(cpio_newc(_entries()))
    b = gzip_deterministic(cpio_newc(list(reversed(_entries()))))
    assert a == b
    assert gzip.decompress(a) == cpio_newc(_entries())


def test_archive_is_read_back_by_gnu_cpio(tmp_path):
    cpio = shutil.which("cpio")
    if not cpio:
        pytest.fail("cpio missing: run ./pants --version as root")
    listing = subprocess.run(
        [cpio, "-itv"], input=cpio_newc(_entries()), capture_output=True, check=True
    ).stdout.decode()
    names = [
        line.split()[-1] if "->" not in line else line.split()[-3] for line in listing.splitlines()
    ]
    assert names == ["bin", "bin/sh", "bin/tool", "dev", "dev/console", "init"]
    assert "crw-------" in listing and "-rwxr-xr-x" in listing


def test_duplicate_paths_are_rejected():
    with pytest.raises(ValueError, match="two entries for /init"):
        cpio_newc([regular("init", b"a"), regular("/init", b"b")])


def test_static_elf_detection():
    with open("/bin/busybox", "rb") as f:
        assert is_static_elf(f.read())
    with open("/bin/ls", "rb") as f:
        assert not is_static_elf(f.read())
    assert not is_static_elf(b"#!/bin/sh\n")


def test_app_image_with_host_binaries_and_programs_is_byte_identical(tmp_path, monkeypatch):
    from kernel_rules.domain.guest.initramfs import main

    repo = __import__("pathlib").Path(__file__).resolve().parents[2]
    (tmp_path / "init").write_text("#!/bin/sh\n")
    (tmp_path / "w.sh").write_text("sqlite3 -version\n")
    monkeypatch.chdir(tmp_path)
    outs = []
    for i in range(2):
        out = tmp_path / f"app{i}.cpio.gz"
        assert (
            main(
                [
                    "--busybox",
                    "/bin/busybox",
                    "--init",
                    "init",
                    "--out",
                    str(out),
                    "--binary",
                    "/usr/bin/sqlite3",
                    "--program",
                    str(repo / "examples/tracing/ipc_demo.c"),
                    "--marker-source",
                    str(repo / "kernel_rules/domain/guest/window_marker.c"),
                    "--file",
                    "w.sh",
                    "app/w.sh",
                ]
            )
            == 0
        )
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    listing = (
        subprocess.run(
            ["cpio", "-it"], input=gzip.decompress(outs[0]), capture_output=True, check=True
        )
        .stdout.decode()
        .split()
    )
    for path in (
        "usr/bin/sqlite3",
        "usr/bin/ipc_demo",
        "bin/kr-window-begin",
        "bin/kr-window-end",
        "bin/kr-userspace-begin",
        "app/w.sh",
        "init",
        "lib64/ld-linux-x86-64.so.2",
        "dev/console",
    ):
        assert path in listing, path
    assert any(p.endswith("libsqlite3.so.0") for p in listing)


def test_a_file_whose_name_holds_an_equals_sign_keeps_its_name(tmp_path, monkeypatch):
    from kernel_rules.domain.guest.initramfs import main

    (tmp_path / "init").write_text("#!/bin/sh\n")
    (tmp_path / "a=b.txt").write_text("data\n")
    monkeypatch.chdir(tmp_path)
    assert (
        main(
            [
                "--busybox",
                "/bin/busybox",
                "--init",
                "init",
                "--out",
                "out.cpio.gz",
                "--file",
                "a=b.txt",
                "app/x=y/a=b.txt",
            ]
        )
        == 0
    )
    listing = subprocess.run(
        ["cpio", "-it"],
        input=gzip.decompress((tmp_path / "out.cpio.gz").read_bytes()),
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert "app/x=y/a=b.txt" in listing.split()
