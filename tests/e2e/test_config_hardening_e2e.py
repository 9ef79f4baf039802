"""End to end, for real: configuration values from BUILD files, fragments and base configs never
run a command on the host or bring a host file into a kernel, bad fragment names and guest
devices fail when the BUILD file is read, and a `force` value that olddefconfig drops is an
error naming the field, the value and the range.

Every case but the last fails before any kernel is built (most before any process runs: a few
minutes in all); the last composes a tailored kernel, so it traces examples/tracing first (the
trace kernel build and the baseline trace: ~10 minutes on 2 cores, shared with the other e2e
files of a session)."""

from __future__ import annotations

from pathlib import Path

import pytest

SOURCE = "//third_party/linux:linux-6.1"
ROOT = "hardening"


def _kernel(fragments: str = "", base_config: str = "") -> str:
    fields = f'fragments=["{fragments}"]' if fragments else f'base_config="{base_config}"'
    return f'kernel_image(name="k", source="{SOURCE}", {fields})\n'


def _tailored(force: str) -> str:
    return f'tailored_kernel(name="k", baseline="//examples/tracing:qemu-q35", force=[{force!r}])\n'


@pytest.fixture(scope="module")
def markers(tmp_path_factory) -> Path:
    """A directory the injection attempts try to create files in; it must stay empty."""
    return tmp_path_factory.mktemp("hardening-markers")


@pytest.fixture(scope="module")
def cases(ws, markers):
    """One directory per case under hardening/ (a BUILD file that fails when read must not hide
    another case's target)."""
    m = markers
    files = {
        "inject-fragment": {
            "BUILD": _kernel("inject.config"),
            "inject.config": f'CONFIG_BLK_DEV_INITRD=y\nCONFIG_INITRAMFS_SOURCE="$(shell touch '
            f'{m}/fragment)"\n',
        },
        "inject-localversion": {
            "BUILD": _kernel("inject.config"),
            "inject.config": f'CONFIG_LOCALVERSION="-x;touch {m}/localversion;"\n',
        },
        "inject-base": {
            "BUILD": _kernel(base_config="inject-base.config"),
            "inject-base.config": f'CONFIG_64BIT=y\nCONFIG_LOCALVERSION="`touch {m}/base`"\n',
        },
        "inject-force": {"BUILD": _tailored(f'CONFIG_LOCALVERSION="$(shell touch {m}/force)"')},
        "hostdir-fragment": {
            "BUILD": _kernel("hostdir.config"),
            "hostdir.config": f'CONFIG_BLK_DEV_INITRD=y\nCONFIG_INITRAMFS_SOURCE="{m}"\n',
        },
        "hostdir-force": {"BUILD": _tailored(f'CONFIG_INITRAMFS_SOURCE="{m}"')},
        "firmware-default": {
            "BUILD": _kernel("firmware.config"),
            "firmware.config": 'CONFIG_FW_LOADER=y\nCONFIG_EXTRA_FIRMWARE="fw.bin"\n',
        },
        "glob": {"BUILD": _kernel("*.config"), "a.config": "CONFIG_PRINTK=y\n"},
        "equals": {"BUILD": _kernel("a=b.config"), "a=b.config": "CONFIG_PRINTK=y\n"},
        "latin1": {
            "BUILD": _kernel("latin1.config"),
            "latin1.config": b'CONFIG_PRINTK=y\nCONFIG_DEFAULT_HOSTNAME="caf\xe9"\n',
        },
        "devices": {
            "BUILD": 'kernel_baseline(name="b", kernel="//examples/minimal:kernel", '
            'devices=["loader,file=/etc/passwd,addr=0x1000000"])\n'
        },
        "force-dropped": {"BUILD": _tailored("CONFIG_LOG_BUF_SHIFT=99")},
    }
    for case, contents in files.items():
        d = ws.root / ROOT / case
        d.mkdir(parents=True)
        for name, text in contents.items():
            (d / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return ws.root / ROOT


NOT_A_BUILD = ("Starting: Build kernel", "Starting: Compose")
NO_PROCESS = NOT_A_BUILD + ("Starting: Make base config", "Starting: Configure kernel")


@pytest.mark.parametrize(
    "target, expected, not_started",
    [
        (
            "inject-fragment:k",
            [
                "hardening/inject-fragment:k: field `fragments`: hardening/inject-fragment/inject.config:2: "
                "CONFIG_INITRAMFS_SOURCE: the string value",
                "contains '$'",
                "never make or shell code",
            ],
            NO_PROCESS,
        ),
        (
            "inject-localversion:k",
            [
                "field `fragments`: hardening/inject-localversion/inject.config:1: CONFIG_LOCALVERSION",
                "contains ';': it separates shell commands",
            ],
            NO_PROCESS,
        ),
        (
            "inject-base:k",
            [
                "hardening/inject-base:k: field `base_config`: hardening/inject-base/inject-base.config:2: "
                "CONFIG_LOCALVERSION",
                "contains '`'",
            ],
            NO_PROCESS,
        ),
        (
            "inject-force:k",
            [
                "hardening/inject-force:k field `force`[0]: CONFIG_LOCALVERSION: the string value",
                "contains '$'",
            ],
            NO_PROCESS,
        ),
        (
            "hostdir-fragment:k",
            [
                "hardening/hostdir-fragment/hostdir.config:2: CONFIG_INITRAMFS_SOURCE=",
                "is an absolute path (a host file outside the kernel source and build tree)",
                "host files are not part of the cache key",
            ],
            NO_PROCESS,
        ),
        (
            "hostdir-force:k",
            [
                "hardening/hostdir-force:k field `force`[0]: CONFIG_INITRAMFS_SOURCE=",
                "is an absolute path",
            ],
            NO_PROCESS,
        ),
        (
            "firmware-default:k",
            [
                "hardening/firmware-default:k: the final configuration names files outside the kernel tree",
                "the final .config (the base configuration or a Kconfig default): "
                'CONFIG_EXTRA_FIRMWARE_DIR="/lib/firmware"',
                "is an absolute path",
            ],
            NOT_A_BUILD,
        ),
        ("glob:k", ["hardening/glob:k: field `fragments`: '*.config' is a glob"], NO_PROCESS),
        ("equals:k", ["hardening/equals:k: field `fragments`: 'a=b.config' holds `=`"], NO_PROCESS),
        (
            "latin1:k",
            [
                "hardening/latin1:k: field `fragments`: hardening/latin1/latin1.config:2: byte 0xe9 "
                "(column 29) is not UTF-8"
            ],
            NO_PROCESS,
        ),
        (
            "devices:b",
            [
                "hardening/devices:b: field `devices`[0]: 'loader,file=/etc/passwd,addr=0x1000000': the "
                "`loader` device loads a host file"
            ],
            NO_PROCESS,
        ),
    ],
)
def test_bad_value_fails_before_any_build_and_runs_nothing(
    ws, cases, markers, target, expected, not_started
):
    result = ws.pants("package", f"{ROOT}/{target}")
    assert result.returncode != 0
    for text in expected:
        assert text in result.output, result.output[-3000:]
    for text in not_started:
        assert text not in result.output, result.output[-3000:]
    assert "Traceback (most recent call last)" not in result.output
    assert list(markers.iterdir()) == []


def test_injection_attempts_created_nothing(ws, cases, markers):
    """After every case above, not one marker exists (the attempts named files in `markers`)."""
    assert list(markers.iterdir()) == []


def test_dropped_force_value_names_the_field_value_and_range(ws, cases, markers):
    result = ws.pants("package", f"{ROOT}/force-dropped:k", timeout=3600)
    assert result.returncode != 0
    assert (
        "hardening/force-dropped:k: 1 `force` value(s) did not survive `make olddefconfig`:"
        in result.output
    ), result.output[-5000:]
    assert (
        "hardening/force-dropped:k field `force`[0]: CONFIG_LOG_BUF_SHIFT: requested 99, got "
        "17 (value outside its allowed range or not visible: 12..25)" in result.output
    )
    assert "Build kernel hardening/force-dropped:k" not in result.output
    assert "Traceback (most recent call last)" not in result.output
    assert list(markers.iterdir()) == []
