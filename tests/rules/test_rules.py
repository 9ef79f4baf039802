"""Pants RuleRunner tests of the thin rules: source pinning, fragment validation, tool lookup,
and a real configure step against the pinned kernel source."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile

import pytest
from pants.engine.addresses import Address
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.rules import QueryRule
from pants.testutil.rule_runner import RuleRunner

from kernel_rules import register
from kernel_rules.rules.types import KernelConfig, KernelConfigRequest
from kernel_rules.targets.kernel_image import KernelImageFieldSet
from kernel_rules.rules.types import LinuxSource, LinuxSourceRequest
from kernel_rules.rules.types import Toolchain, ToolchainRequest


@pytest.fixture
def rule_runner() -> RuleRunner:
    runner = RuleRunner(
        rules=[
            *register.rules(),
            QueryRule(LinuxSource, [LinuxSourceRequest]),
            QueryRule(KernelConfig, [KernelConfigRequest]),
            QueryRule(Toolchain, [ToolchainRequest]),
        ],
        target_types=register.target_types(),
    )
    runner.set_options([], env_inherit={"PATH"})
    return runner


def _fake_tarball(runner: RuleRunner) -> str:
    src = os.path.join(runner.build_root, "linux-0.0")
    os.makedirs(src)
    open(os.path.join(src, "Makefile"), "w").close()
    path = os.path.join(runner.build_root, "src", "linux.tar")
    os.makedirs(os.path.dirname(path))
    with tarfile.open(path, "w") as t:
        t.add(src, arcname="linux-0.0")
    shutil.rmtree(src)
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _source_build(sha: str) -> str:
    return f'linux_source(name="linux", tarball="linux.tar", sha256="{sha}", version="0.0")\n'


def test_pinned_tarball_is_accepted(rule_runner: RuleRunner) -> None:
    sha = _fake_tarball(rule_runner)
    rule_runner.write_files({"src/BUILD": _source_build(sha)})
    source = rule_runner.request(LinuxSource, [LinuxSourceRequest("//src:linux", Address("k"))])
    assert source.sha256 == sha and source.filename == "src/linux.tar"


def test_sha256_mismatch_names_target_and_both_digests(rule_runner: RuleRunner) -> None:
    actual = _fake_tarball(rule_runner)
    rule_runner.write_files({"src/BUILD": _source_build("0" * 64)})
    with pytest.raises(ExecutionError) as e:
        rule_runner.request(LinuxSource, [LinuxSourceRequest("//src:linux", Address("k"))])
    msg = str(e.value)
    assert "src:linux: sha256 mismatch" in msg and "0" * 64 in msg and actual in msg


def test_source_must_be_a_linux_source(rule_runner: RuleRunner) -> None:
    rule_runner.write_files({"k/BUILD": 'kernel_image(name="other", source="//k:other")\n'})
    with pytest.raises(ExecutionError, match="must name a `linux_source` target"):
        rule_runner.request(
            LinuxSource, [LinuxSourceRequest("//k:other", Address("k", target_name="x"))]
        )


def test_malformed_fragment_names_target_field_and_file_line(rule_runner: RuleRunner) -> None:
    sha = _fake_tarball(rule_runner)
    rule_runner.write_files(
        {
            "src/BUILD": _source_build(sha),
            "k/BUILD": 'kernel_image(name="k", source="//src:linux", fragments=["a.config"])\n',
            "k/a.config": "CONFIG_PRINTK=y\nCONFIG_TTY = y\n",
        }
    )
    tgt = rule_runner.get_target(Address("k", target_name="k"))
    with pytest.raises(ExecutionError) as e:
        rule_runner.request(KernelConfig, [KernelConfigRequest(KernelImageFieldSet.create(tgt))])
    assert "k:k: field `fragments`: k/a.config:2: malformed line 'CONFIG_TTY = y'" in str(e.value)


def test_missing_fragment_file_is_reported(rule_runner: RuleRunner) -> None:
    sha = _fake_tarball(rule_runner)
    rule_runner.write_files(
        {
            "src/BUILD": _source_build(sha),
            "k/BUILD": 'kernel_image(name="k", source="//src:linux", fragments=["nope.config"])\n',
        }
    )
    tgt = rule_runner.get_target(Address("k", target_name="k"))
    with pytest.raises(ExecutionError, match=r"nope\.config.*fragments|fragments.*nope\.config"):
        rule_runner.request(KernelConfig, [KernelConfigRequest(KernelImageFieldSet.create(tgt))])


def test_unknown_base_is_rejected_naming_the_field(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {"k/BUILD": 'kernel_image(name="k", source="//src:linux", base="tinnyconfig")\n'}
    )
    with pytest.raises(ExecutionError, match=r"(?s)base.*tinnyconfig.*tinyconfig"):
        rule_runner.get_target(Address("k", target_name="k"))


def test_missing_tool_names_the_debian_package(rule_runner: RuleRunner, tmp_path) -> None:
    os.symlink("/usr/bin/python3", tmp_path / "python3")
    rule_runner.set_options([f"--kernel-build-search-path=['{tmp_path}']"], env_inherit={"PATH"})
    with pytest.raises(ExecutionError) as e:
        rule_runner.request(
            Toolchain, [ToolchainRequest(("python3", "flex", "gcc"), "kernel builds")]
        )
    assert "missing flex, gcc" in str(e.value) and "apt-get install flex gcc" in str(e.value)


def test_toolchain_fingerprint_is_in_the_process_environment(rule_runner: RuleRunner) -> None:
    tc = rule_runner.request(Toolchain, [ToolchainRequest(("python3", "make"), "tests")])
    assert len(tc.env["KERNEL_RULES_TOOLCHAIN"]) == 64
    assert tc.env["PATH"] == "/usr/bin:/bin:/usr/sbin:/sbin"
    assert os.path.basename(tc.path("make")) == "make"


def test_real_configure_reports_unknown_symbol_and_unmet_dependency(
    rule_runner: RuleRunner, tarball, tarball_sha256
) -> None:
    """A real `make tinyconfig` + `olddefconfig` on the pinned source, explained by kconfiglib."""
    os.makedirs(os.path.join(rule_runner.build_root, "src"))
    dest = os.path.join(rule_runner.build_root, "src", tarball.name)
    try:
        os.link(tarball, dest)
    except OSError:
        shutil.copyfile(tarball, dest)
    rule_runner.write_files(
        {
            "src/BUILD": f'linux_source(name="linux", tarball="{tarball.name}", '
            f'sha256="{tarball_sha256}", version="6.1")\n',
            "k/BUILD": 'kernel_image(name="k", source="//src:linux", fragments=["a.config"])\n',
            "k/a.config": "CONFIG_PRINTK=y\nCONFIG_NO_SUCH_OPTION=y\nCONFIG_EXT4_FS=y\n",
        }
    )
    tgt = rule_runner.get_target(Address("k", target_name="k"))
    with pytest.raises(ExecutionError) as e:
        rule_runner.request(KernelConfig, [KernelConfigRequest(KernelImageFieldSet.create(tgt))])
    msg = str(e.value)
    assert "2 requested config value(s) did not survive" in msg
    assert "k/a.config:2: CONFIG_NO_SUCH_OPTION: requested y, got n (unknown symbol" in msg
    assert (
        "k/a.config:3: CONFIG_EXT4_FS: requested y, got n (unmet dependency: BLOCK [BLOCK=n])"
        in msg
    )


def test_two_targets_with_one_output_path_are_refused(rule_runner: RuleRunner) -> None:
    from pants.core.goals.package import OutputPathField
    from kernel_rules.rules.types import OutputDir, OutputDirRequest

    runner = RuleRunner(
        rules=[*register.rules(), QueryRule(OutputDir, [OutputDirRequest])],
        target_types=register.target_types(),
    )
    sha = _fake_tarball(runner)
    runner.write_files(
        {
            "src/BUILD": _source_build(sha),
            "a/BUILD": 'kernel_image(name="k", source="//src:linux", base="tinyconfig", output_path="kernels/x")\n'
            'kernel_image(name="inner", source="//src:linux", base="tinyconfig", output_path="kernels/x/y")\n'
            'kernel_image(name="own", source="//src:linux", base="tinyconfig")\n',
            "b/BUILD": 'kernel_image(name="k", source="//src:linux", base="tinyconfig", output_path="kernels/x")\n',
        }
    )

    def request(address: Address):
        target = runner.get_target(address)
        return runner.request(OutputDir, [OutputDirRequest(address, target[OutputPathField])])

    assert request(Address("a", target_name="own")).path == "a/own"
    with pytest.raises(ExecutionError) as e:
        request(Address("a", target_name="k"))
    message = str(e.value)
    assert "a:k: field `output_path`: dist/kernels/x is also where" in message
    assert "a:inner (`kernels/x/y`)" in message and "b:k (`kernels/x`)" in message
    runner.write_files({"broken/BUILD": 'kernel_image(name="k", base="tinyconfg")\n'})
    assert request(Address("a", target_name="own")).path == "a/own"  # not blocked by broken/
