"""The value policy: path-valued options name only files inside the kernel tree, string values are
data, BUILD fields are refused when the BUILD file is read, and the Kbuild driver refuses a bad
configuration before it touches a cache or a warm tree."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import pytest

from kernel_rules.domain.build import kbuild
from kernel_rules.domain.kconfig.config_policy import (
    PATH_OPTIONS,
    PolicyError,
    check_final,
    check_requests,
    forbid_symbol,
    force_value,
    path_problem,
)
from kernel_rules.domain.kconfig.fragments import merge_requests, parse_config, parse_fragment
from tests.conftest import REPO


@pytest.mark.parametrize(
    "symbol, value",
    [
        ("INITRAMFS_SOURCE", '""'),
        ("INITRAMFS_SOURCE", "n"),
        ("INITRAMFS_SOURCE", '"usr/initramfs_list"'),
        ("INITRAMFS_SOURCE", '"usr/a.cpio usr/dir"'),
        ("MODULE_SIG_KEY", '"certs/signing_key.pem"'),
        ("SYSTEM_TRUSTED_KEYS", '"debian/certs/debian-uefi-certs.pem"'),
        ("EXTRA_FIRMWARE_DIR", '"firmware"'),
        ("MODPROBE_PATH", '"/sbin/modprobe"'),  # a path in the guest, not a host file
        ("DEFAULT_INIT", '"/sbin/init"'),
    ],
)
def test_allowed_values(symbol, value):
    assert path_problem(symbol, value) is None


@pytest.mark.parametrize(
    "symbol, value, problem",
    [
        ("INITRAMFS_SOURCE", '"/some/host/dir"', "is an absolute path"),
        ("INITRAMFS_SOURCE", '"usr/list /etc"', "'/etc' is an absolute path"),
        ("INITRAMFS_SOURCE", '"../../outside"', "has a `..` component"),
        ("INITRAMFS_SOURCE", '"usr/../../x"', "has a `..` component"),
        ("INITRAMFS_SOURCE", '"~/initramfs"', "starts with `~`"),
        ("EXTRA_FIRMWARE", '"/lib/firmware/x.bin"', "is an absolute path"),
        ("EXTRA_FIRMWARE_DIR", '"/lib/firmware"', "is an absolute path"),
        ("MODULE_SIG_KEY", '"pkcs11:token=host;object=key"', "holds `:`"),
        ("MODULE_SIG_KEY", '"/root/signing_key.pem"', "is an absolute path"),
        ("SYSTEM_TRUSTED_KEYS", '"/etc/ssl/certs/ca.pem"', "is an absolute path"),
        ("SYSTEM_REVOCATION_KEYS", '"/etc/revoked.pem"', "is an absolute path"),
        ("SYSTEM_BLACKLIST_HASH_LIST", '"/etc/hashes"', "is an absolute path"),
        ("ACPI_CUSTOM_DSDT_FILE", '"../../../../etc/dsdt.hex"', "has a `..` component"),
        ("BOOT_CONFIG_EMBED_FILE", '"/etc/bootconfig"', "is an absolute path"),
        ("CFG80211_EXTRA_REGDB_KEYDIR", '"/etc/regdb"', "is an absolute path"),
        ("UNUSED_KSYMS_WHITELIST", '"/etc/whitelist"', "is an absolute path"),
        ("INITRAMFS_SOURCE", '"usr/*"', "contains '*'"),
    ],
)
def test_refused_values_say_why(symbol, value, problem):
    why = path_problem(symbol, value)
    assert why is not None and problem in why
    assert PATH_OPTIONS[symbol] in why and "not part of the cache key" in why
    assert 'use "" or a path relative to the kernel source tree' in why


def test_fragment_values_are_named_by_file_and_line():
    requests = parse_fragment(
        'CONFIG_BLK_DEV_INITRD=y\nCONFIG_INITRAMFS_SOURCE="/etc"\n', "f.config"
    )
    [v] = check_requests(requests)
    assert v.message().startswith(
        "f.config:2: CONFIG_INITRAMFS_SOURCE=\"/etc\": '/etc' is an absolute path"
    )


def test_final_values_name_the_request_or_the_default():
    requests = merge_requests([("f.config", 'CONFIG_EXTRA_FIRMWARE="fw.bin"\n')])
    final = {"EXTRA_FIRMWARE": '"fw.bin"', "EXTRA_FIRMWARE_DIR": '"/lib/firmware"'}
    [v] = check_final(final, requests, "the final .config (a Kconfig default)")
    assert v.symbol == "EXTRA_FIRMWARE_DIR"
    assert v.message().startswith(
        'the final .config (a Kconfig default): CONFIG_EXTRA_FIRMWARE_DIR="/lib/firmware": '
    )
    requests = merge_requests([("f.config", 'CONFIG_INITRAMFS_SOURCE="/etc"\n')])
    [v] = check_final({"INITRAMFS_SOURCE": '"/etc"'}, requests, "default")
    assert v.origin == "f.config:1"


def _debian_cloud_config() -> str:
    debs = sorted(
        (REPO / "third_party/debian/debs").glob("linux-image-*-cloud-amd64-unsigned_*.deb")
    )
    if not debs:
        pytest.skip(
            "the Debian cloud kernel package is not fetched (third_party/setup.sh --debian-cloud)"
        )
    fsys = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(debs[-1])], capture_output=True, check=True
    ).stdout
    return subprocess.run(
        ["tar", "-xO", "--wildcards", "./boot/config-*"],
        input=fsys,
        capture_output=True,
        check=True,
    ).stdout.decode()


def test_debian_cloud_config_passes():
    """Debian's shipped config (the universe of examples/debian-cloud), and what olddefconfig
    adds to it (MODULE_SIG_KEY's default), are data naming no host file."""
    values = parse_config(_debian_cloud_config(), "debian-cloud.config")
    assert len(values) > 3000
    assert check_final(values, {}, "debian") == []
    values["MODULE_SIG_KEY"] = '"certs/signing_key.pem"'
    assert check_final(values, {}, "debian") == []


def test_every_example_fragment_passes():
    paths = sorted(REPO.glob("examples/**/*.config"))
    assert paths
    for path in paths:
        assert check_requests(parse_fragment(path.read_text(), str(path))) == [], path


@pytest.mark.parametrize(
    "line, expected",
    [
        ("CONFIG_LOG_BUF_SHIFT=99", ("LOG_BUF_SHIFT", "99")),
        ("NR_CPUS=4", ("NR_CPUS", "4")),
        ("# CONFIG_IPV6 is not set", ("IPV6", "n")),
        ('CONFIG_LOCALVERSION="-tailored"', ("LOCALVERSION", '"-tailored"')),
        ('CONFIG_INITRAMFS_SOURCE=""', ("INITRAMFS_SOURCE", '""')),
    ],
)
def test_force_values(line, expected):
    assert force_value(line, "t field `force`[0]") == expected


@pytest.mark.parametrize(
    "line, problem",
    [
        ('CONFIG_INITRAMFS_SOURCE="$(shell touch x)"', "contains '$'"),
        ('LOCALVERSION="`id`"', "contains '`'"),
        ('CONFIG_LOCALVERSION="a\\"; touch x; \\""', "contains '\\\\'"),
        ("CONFIG_A=y\nCONFIG_B=y", "holds a newline"),
        ('CONFIG_INITRAMFS_SOURCE="/some/host/dir"', "is an absolute path"),
        ('CONFIG_MODULE_SIG_KEY="pkcs11:object=k"', "holds `:`"),
        ("CONFIG_A=maybe", "malformed value"),
        ("# just a comment", "is not a `CONFIG_NAME=value` line"),
    ],
)
def test_bad_force_values_name_the_field(line, problem):
    with pytest.raises(PolicyError) as e:
        force_value(line, "ex:k field `force`[2]")
    assert str(e.value).startswith("ex:k field `force`[2]: ") and problem in str(e.value)


def test_forbid_symbols():
    assert forbid_symbol("CONFIG_IPV6", "o") == "IPV6" and forbid_symbol(" IPV6 ", "o") == "IPV6"
    with pytest.raises(PolicyError, match=r"^o: 'IPV6;x' is not a Kconfig symbol name"):
        forbid_symbol("IPV6;x", "o")


# --------------------------------------------------------------------------------------------
# BUILD fields: refused when the BUILD file is read (the bad-input table)
# --------------------------------------------------------------------------------------------


def _fields():
    from kernel_rules.targets.tailored import TailoredForbidField, TailoredForceField
    from kernel_rules.targets.kernel_image import KernelFragmentsField
    from kernel_rules.targets.fields import MachineDevicesField

    return {
        "fragments": KernelFragmentsField,
        "force": TailoredForceField,
        "forbid": TailoredForbidField,
        "devices": MachineDevicesField,
    }


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("fragments", ["*.config"], "bad:k: field `fragments`: '*.config' is a glob"),
        ("fragments", ["a=b.config"], "bad:k: field `fragments`: 'a=b.config' holds `=`"),
        ("fragments", ["/etc/kernel.config"], "'/etc/kernel.config' is an absolute path"),
        (
            "force",
            ['CONFIG_INITRAMFS_SOURCE="$(shell touch /tmp/x)"'],
            'bad:k field `force`[0]: CONFIG_INITRAMFS_SOURCE: the string value "$(shell touch /tmp/x)" '
            "contains '$'",
        ),
        (
            "force",
            ["CONFIG_PRINTK=y", 'CONFIG_INITRAMFS_SOURCE="/some/host/dir"'],
            "bad:k field `force`[1]: CONFIG_INITRAMFS_SOURCE=\"/some/host/dir\": '/some/host/dir' is an "
            "absolute path",
        ),
        (
            "forbid",
            ["IPV6 && x"],
            "bad:k field `forbid`[0]: 'IPV6 && x' is not a Kconfig symbol name",
        ),
        (
            "devices",
            ["loader,file=/etc/passwd,addr=0x1000000"],
            "bad:k: field `devices`[0]: 'loader,file=/etc/passwd,addr=0x1000000': the `loader` device "
            "loads a host file",
        ),
        (
            "devices",
            ["virtio-rng-pci", "virtio-net-pci,romfile=/etc/shadow"],
            "bad:k: field `devices`[1]: 'virtio-net-pci,romfile=/etc/shadow': property `romfile` names a "
            "host file",
        ),
        (
            "devices",
            ["virtconsole,chardev=c0"],
            "property `chardev` connects the device to a host backend",
        ),
    ],
)
def test_bad_build_fields_fail_when_the_build_file_is_read(field, value, message):
    from pants.engine.addresses import Address
    from pants.engine.target import InvalidFieldException

    with pytest.raises(InvalidFieldException) as e:
        _fields()[field].compute_value(value, Address("bad", target_name="k"))
    assert message in str(e.value)


@pytest.mark.parametrize(
    "field, value",
    [
        ("fragments", ["../minimal/boot.config", "universe.config"]),
        ("force", ["CONFIG_PRINTK=y", "NR_CPUS=4", 'CONFIG_LOCALVERSION="-x"']),
        ("forbid", ["IPV6", "CONFIG_EVENTFD"]),
        ("devices", ["virtio-net-pci", "virtio-rng-pci", "virtio-rng-pci,id=rng0,bus=pcie.0"]),
    ],
)
def test_good_build_fields_are_kept(field, value):
    from pants.engine.addresses import Address

    assert _fields()[field].compute_value(
        value, Address("examples/tracing", target_name="k")
    ) == tuple(value)


# --------------------------------------------------------------------------------------------
# the Kbuild driver: refused before it touches the cache
# --------------------------------------------------------------------------------------------


def _args(tmp_path: Path, **kw) -> argparse.Namespace:
    return argparse.Namespace(
        tarball=str(tmp_path / "missing.tar.xz"),
        sha256="0" * 64,
        cache=str(tmp_path / "cache"),
        arch="x86_64",
        jobs=1,
        max_trees=1,
        out=str(tmp_path / "out"),
        **kw,
    )


def test_build_refuses_a_host_path_before_touching_the_cache(tmp_path, capsys):
    config = tmp_path / "config"
    config.write_text('CONFIG_BLK_DEV_INITRD=y\nCONFIG_INITRAMFS_SOURCE="/some/host/dir"\n')
    assert kbuild.build(_args(tmp_path, config=str(config), stats=None)) == 3
    error = json.loads(capsys.readouterr().out)["error"]
    assert "the configuration names files outside the kernel tree" in error
    assert 'CONFIG_INITRAMFS_SOURCE="/some/host/dir"' in error
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def test_build_refuses_code_in_a_value_before_touching_the_cache(tmp_path, capsys):
    config = tmp_path / "config"
    config.write_text('CONFIG_LOCALVERSION="$(shell touch x)"\n')
    assert kbuild.build(_args(tmp_path, config=str(config), stats=None)) == 3
    assert "contains '$'" in json.loads(capsys.readouterr().out)["error"]
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    "text, message",
    [
        (
            b'CONFIG_LOCALVERSION="$(shell touch x)"\n',
            "frag.config:1: CONFIG_LOCALVERSION: the string",
        ),
        (
            b'CONFIG_OK=y\nCONFIG_INITRAMFS_SOURCE="/etc"\n',
            "frag.config:2: CONFIG_INITRAMFS_SOURCE=\"/etc\": '/etc' is an absolute path",
        ),
        (b'CONFIG_OK=y\nCONFIG_DEFAULT_HOSTNAME="caf\xe9"\n', "frag.config:2: byte 0xe9"),
    ],
)
def test_configure_refuses_bad_fragments_before_touching_the_cache(tmp_path, capsys, text, message):
    frag = tmp_path / "frag.config"
    frag.write_bytes(text)
    base = tmp_path / "base.config"
    base.write_text("CONFIG_64BIT=y\n")
    args = _args(tmp_path, base_config=str(base), fragment=[f"frag.config={frag}"])
    assert kbuild.configure(args) == 3
    error = json.loads(capsys.readouterr().out)["error"].replace(str(frag), "frag.config")
    assert message in error
    assert not (tmp_path / "cache").exists()


def test_base_refuses_a_bad_base_config_before_touching_the_cache(tmp_path, capsys):
    base = tmp_path / "debian.config"
    base.write_text('CONFIG_64BIT=y\nCONFIG_SYSTEM_TRUSTED_KEYS="/etc/ssl/certs/ca.pem"\n')
    assert kbuild.base(_args(tmp_path, base=None, base_config=str(base))) == 2
    assert f"{base}:2: CONFIG_SYSTEM_TRUSTED_KEYS=" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_fragment_paths_may_hold_no_equals_sign_but_names_may(tmp_path, capsys):
    """The driver splits `--fragment NAME=PATH` at the last `=` (names like the debug_info
    fragment's hold an address, paths come from a field that refuses `=`)."""
    frag = tmp_path / "frag.config"
    frag.write_text('CONFIG_LOCALVERSION="$x"\n')
    args = _args(tmp_path, base_config=str(tmp_path / "none"), fragment=[f"a=b field={frag}"])
    assert kbuild.configure(args) == 3
    assert json.loads(capsys.readouterr().out)["error"].startswith("a=b field:1: ")
