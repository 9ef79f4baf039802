"""Bad BUILD inputs, as a table: each fails with a clear error naming the target and field (or
file:line), without a traceback, before any kernel is configured or built, and leaves the
workspace's caches and warm trees as they were. Each case is its own directory, removed after it
(a BUILD file that does not parse must not stay behind for the other tests)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Dict, Tuple

import pytest

SOURCE = "//third_party/linux:linux-6.1"
BASELINE = "//examples/tracing:qemu-q35"


@dataclass(frozen=True)
class Case:
    id: str
    build: str  # BUILD text; the target under test is `:t`
    expected: Tuple[str, ...]  # substrings of the error
    files: Dict[str, bytes] = field(default_factory=dict)
    goal: str = "package"


def _k(args: str) -> str:
    return f'kernel_image(name="t", source="{SOURCE}", {args})\n'


def _base(args: str) -> str:
    return f'kernel_baseline(name="t", kernel="//examples/tracing:trace-kernel", {args})\n'


def _app(args: str) -> str:
    return f'app_profile(name="t", baseline="{BASELINE}", workload="w.sh", {args})\n'


def _tk(args: str) -> str:
    return f'tailored_kernel(name="t", baseline="{BASELINE}", {args})\n'


W = {"w.sh": b"true\n"}

CASES = [
    # kernel_image
    Case("base-typo", _k('base="tinyconfg"'), ("'base' field", "tinyconfig", "tinyconfg")),
    Case("unknown-field", _k('flavour="x"'), ("Unrecognized field `flavour=x`", ":t")),
    Case(
        "missing-fragment",
        _k('fragments=["nope.config"]'),
        ("`fragments` field of bad_inputs/missing-fragment:t", "nope.config"),
    ),
    Case("fragment-glob", _k('fragments=["*.config"]'), (":t", "fragments", "*.config")),
    Case(
        "fragment-name-with-equals",
        _k('fragments=["a=b.config"]'),
        (":t", "fragments", "a=b.config"),
        files={"a=b.config": b"CONFIG_PRINTK=y\n"},
    ),
    Case(
        "source-wrong-type",
        _k("").replace(SOURCE, BASELINE),
        ("field `source` must name a `linux_source` target", "kernel_baseline"),
    ),
    Case(
        "source-missing",
        _k("").replace("linux-6.1", "nope"),
        ("third_party/linux:nope", "`source` field", "does not exist"),
    ),
    Case(
        "output-path-collision",
        _k('output_path="examples.minimal/kernel"'),
        (
            "field `output_path`: dist/examples.minimal/kernel is also where examples/minimal:kernel",
        ),
    ),
    # kernel_baseline
    Case(
        "baseline-kernel-missing",
        _base("").replace("//examples/tracing:trace-kernel", ":nope"),
        (":nope", "`kernel` field", "does not exist"),
    ),
    Case(
        "baseline-kernel-wrong-type",
        _base("").replace("//examples/tracing:trace-kernel", SOURCE),
        ("field `kernel` must name a `kernel_image` or a `prebuilt_kernel`", "linux_source"),
    ),
    Case(
        "baseline-modules-typo",
        'kernel_baseline(name="t", kernel="//third_party/debian:cloud-amd64", modules=["virtio_nett"])\n',
        ("field `modules`: no module `virtio_nett`; did you mean virtio_net",),
    ),
    # app_profile
    Case(
        "app-baseline-wrong-type",
        _app("").replace(BASELINE, "//examples/minimal:kernel"),
        ("field `baseline` must name a `kernel_baseline` target", "kernel_image"),
        files=W,
    ),
    # tailored_kernel
    Case(
        "tailored-app-wrong-type",
        _tk('apps=["//examples/minimal:kernel"]'),
        ("field `apps`: examples/minimal:kernel is a `kernel_image`, not an `app_profile`",),
    ),
    Case(
        "tailored-baseline-wrong-type",
        _tk("").replace(BASELINE, "//examples/minimal:kernel"),
        ("field `baseline` must name a `kernel_baseline` target",),
    ),
    Case(
        "tailored-force-malformed",
        _tk('force=["CONFIG_PRINTK"]'),
        ("field `force`[0]: malformed line 'CONFIG_PRINTK'",),
    ),
    Case(
        "tailored-objective",
        _tk('objective="fast"'),
        ("'objective' field", "options", "size", "fast"),
    ),
    Case("tailored-minimise-mode", _tk('minimise="all"'), ("'minimise' field", "traced", "all")),
    Case(
        "tailored-minimise-max-tries",
        _tk('minimise="traced", minimise_max_tries=0'),
        ("field `minimise_max_tries`: must be at least 1, got 0",),
    ),
    Case(
        "tailored-force-injection",
        _tk('force=["CONFIG_LOCALVERSION=\\"$(shell id)\\""]'),
        ("field `force`[0]: CONFIG_LOCALVERSION: the string value", "contains '$'"),
    ),
    Case(
        "tailored-force-host-path",
        _tk('force=["CONFIG_INITRAMFS_SOURCE=\\"/etc\\""]'),
        ("field `force`[0]: CONFIG_INITRAMFS_SOURCE=", "is an absolute path"),
    ),
    # fragments and base configs: values are data, never make or shell code, never host files
    Case(
        "fragment-backtick",
        _k('fragments=["f.config"]'),
        (
            "field `fragments`: bad_inputs/fragment-backtick/f.config:1: CONFIG_LOCALVERSION",
            "contains '`'",
        ),
        files={"f.config": b'CONFIG_LOCALVERSION="`id`"\n'},
    ),
    Case(
        "fragment-dotdot-path",
        _k('fragments=["f.config"]'),
        ("bad_inputs/fragment-dotdot-path/f.config:1: CONFIG_EXTRA_FIRMWARE_DIR=",),
        files={"f.config": b'CONFIG_EXTRA_FIRMWARE_DIR="../../etc"\n'},
    ),
    Case(
        "fragment-latin1",
        _k('fragments=["f.config"]'),
        ("field `fragments`: bad_inputs/fragment-latin1/f.config:1: byte 0xe9",),
        files={"f.config": b'CONFIG_DEFAULT_HOSTNAME="caf\xe9"\n'},
    ),
    Case(
        "fragment-malformed-value",
        _k('fragments=["f.config"]'),
        ("bad_inputs/fragment-malformed-value/f.config:2: malformed value",),
        files={"f.config": b"CONFIG_PRINTK=y\nCONFIG_TTY=yes please\n"},
    ),
    Case(
        "base-config-injection",
        _k('base_config="b.config"').replace('base="tinyconfig", ', ""),
        ("field `base_config`: bad_inputs/base-config-injection/b.config:1: CONFIG_LOCALVERSION",),
        files={"b.config": b'CONFIG_LOCALVERSION="$(shell id)"\n'},
    ),
    # kernel_baseline machines
    Case(
        "baseline-minimise-max-tries",
        _base("minimise_max_tries=0"),
        ("field `minimise_max_tries`: must be at least 1, got 0",),
    ),
    Case(
        "baseline-cpus-zero", _base("cpus=0"), ("field `cpus`: must be greater than 0, but was 0",)
    ),
    Case(
        "baseline-cpus-negative",
        _base("cpus=-2"),
        ("field `cpus`: must be greater than 0, but was -2",),
    ),
    Case(
        "baseline-memory-negative",
        _base('memory="-5M"'),
        ("field `memory`: '-5M' is not a memory size",),
    ),
    Case(
        "baseline-memory-zero", _base('memory="0"'), ("field `memory`: '0' is too little memory",)
    ),
    Case(
        "baseline-memory-words",
        _base('memory="lots"'),
        ("field `memory`: 'lots' is not a memory size",),
    ),
    Case(
        "baseline-timeout",
        _base("timeout=-5"),
        ("field `timeout`: must be greater than 0, but was -5",),
    ),
    Case(
        "baseline-cmdline-too-long",
        _base('cmdline="console=ttyS0 " + "x" * 2100'),
        ("field `cmdline`: the kernel command line is too long",),
    ),
    Case(
        "baseline-device-loader",
        _base('devices=["loader,file=/etc/shadow,addr=0x1000"]'),
        ("field `devices`[0]", "the `loader` device loads a host file"),
    ),
    Case(
        "baseline-device-file",
        _base('devices=["virtio-blk-pci,drive=d0", "pflash,file=/etc/passwd"]'),
        ("field `devices`", "guests may not reach host files or host resources"),
    ),
    Case(
        "baseline-machine-dumpdtb",
        _base('machine="q35,dumpdtb=/tmp/x.dtb"'),
        (
            "field `machine`: 'q35,dumpdtb=/tmp/x.dtb': the property `dumpdtb=/tmp/x.dtb` may reach host files",
        ),
    ),
    # app_profile
    Case(
        "app-success-regex",
        _app('success="(["'),
        ("field `success`: '([' is not a regular expression",),
        files=W,
    ),
    Case(
        "app-timeout-zero",
        _app("timeout=0"),
        ("field `timeout`: must be greater than 0, but was 0",),
        files=W,
    ),
    Case(
        "app-binary-relative",
        _app('binaries=["usr/bin/sqlite3"]'),
        ("field `binaries`: 'usr/bin/sqlite3' is not an absolute, normalised host path",),
        files=W,
    ),
    Case(
        "app-binary-dotdot",
        _app('binaries=["/usr/bin/../bin/sqlite3"]'),
        ("field `binaries`: '/usr/bin/../bin/sqlite3' is not an absolute, normalised",),
        files=W,
    ),
    Case(
        "app-binary-missing",
        _app('binaries=["/usr/bin/no-such-program"]'),
        ("field `binaries`: '/usr/bin/no-such-program' does not exist on this host",),
        files=W,
    ),
]


@pytest.fixture(scope="module")
def state_before(ws):
    """What the bad inputs must leave alone: the warm trees and unpacked sources of the workspace
    (a case may fill the cache, e.g. unpack a source; it must not change or remove an entry)."""

    def snapshot():
        root = ws.named_caches / "kernel_rules"
        return {
            str(p.relative_to(root)): p.stat().st_mtime_ns
            for pattern in ("trees/*/*", "conf/*/*", "sources/*")
            for p in root.glob(pattern)
            if not p.name.endswith(".lock")
        }

    return snapshot


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_is_a_clear_error_before_any_build(ws, state_before, case):
    before = state_before()
    d = ws.root / "bad_inputs" / case.id
    d.mkdir(parents=True)
    try:
        (d / "BUILD").write_text(case.build)
        for name, data in case.files.items():
            (d / name).write_bytes(data)
        result = ws.pants(case.goal, f"bad_inputs/{case.id}:t", timeout=300)
    finally:
        shutil.rmtree(d)
    assert result.returncode != 0, result.output[-3000:]
    for text in case.expected:
        assert text in result.output, (text, result.output[-3000:])
    assert "Traceback" not in result.output, result.output[-3000:]
    for step in ("Starting: Build kernel", "Starting: Configure kernel", "Starting: Trace"):
        assert step not in result.output, (step, result.output[-3000:])
    assert not (ws.root / "dist" / f"bad_inputs.{case.id}").exists()
    after = state_before()
    assert {k: after.get(k) for k in before} == before


def test_the_table_is_large_enough():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


def test_a_kbuild_step_over_its_timeout_is_stopped_and_named(ws):
    result = ws.pants(
        "--kernel-build-build-timeout=2", "package", "examples/minimal:kernel", timeout=600
    )
    assert result.returncode != 0
    assert "KernelBuildError: examples/minimal:kernel: " in result.output, result.output[-3000:]
    assert "Exceeded timeout of 2.0 seconds when executing local process" in result.output
    assert "Traceback" not in result.output
