"""RuleRunner tests of the BUILD graph: inferred dependencies from address fields and from
fragments in other directories, file fields as owners, and fields refused when read."""

from __future__ import annotations

import logging

import pytest
from pants.engine.addresses import Address, Addresses
from pants.engine.internals.graph import Owners, OwnersRequest
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.rules import QueryRule
from pants.engine.target import DependenciesRequest, InvalidFieldException
from pants.testutil.rule_runner import RuleRunner

from kernel_rules import register
from kernel_rules.targets.fields import KernelDependenciesField
from kernel_rules.targets.kernel_image import (
    KernelBootTimeoutField,
    KernelCmdlineField,
    KernelMemoryField,
)
from kernel_rules.targets.prebuilt import PrebuiltDebugSha256Field
from kernel_rules.targets.source import LinuxSourceSha256Field

SHA = "0" * 64

FILES = {
    "src/BUILD": f'linux_source(name="linux", tarball="linux.tar", sha256="{SHA}", version="0.0")\n',
    "src/linux.tar": "",
    "shared/BUILD": 'files(name="fragments", sources=["*.config"])\n',
    "shared/net.config": "CONFIG_NET=y\n",
    "k/BUILD": (
        'kernel_image(name="trace", source="//src:linux", fragments=["boot.config", '
        '"../shared/net.config", "../loose/x.config"], debug_info=True)\n'
        'kernel_baseline(name="base", kernel=":trace", boot_script="boot.sh")\n'
        'app_profile(name="app", baseline=":base", workload="w.sh", programs=["p.c"], '
        'files=["data/a.txt"])\n'
        'tailored_kernel(name="tk", baseline=":base", apps=[":app"])\n'
    ),
    "k/boot.config": "CONFIG_PRINTK=y\n",
    "k/boot.sh": "true\n",
    "k/w.sh": "true\n",
    "k/p.c": "int main(void) { return 0; }\n",
    "k/data/a.txt": "a\n",
    "loose/x.config": "CONFIG_TTY=y\n",
}


@pytest.fixture
def rule_runner() -> RuleRunner:
    from pants.core.target_types import FilesGeneratorTarget, FileTarget

    runner = RuleRunner(
        rules=[
            *register.rules(),
            QueryRule(Addresses, [DependenciesRequest]),
            QueryRule(Owners, [OwnersRequest]),
        ],
        target_types=[*register.target_types(), FilesGeneratorTarget, FileTarget],
    )
    runner.write_files(FILES)
    return runner


def _deps(runner: RuleRunner, name: str, path: str = "k") -> set:
    tgt = runner.get_target(Address(path, target_name=name))
    return {
        str(a)
        for a in runner.request(Addresses, [DependenciesRequest(tgt[KernelDependenciesField])])
    }


def test_address_fields_are_dependencies(rule_runner: RuleRunner, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        assert _deps(rule_runner, "trace") == {"src:linux", "shared/net.config:fragments"}
    assert "k:trace: field `fragments`: no target owns loose/x.config" in caplog.text
    assert _deps(rule_runner, "base") == {"k:trace"}
    assert _deps(rule_runner, "app") == {"k:base"}
    assert _deps(rule_runner, "tk") == {"k:base", "k:app"}


def test_file_fields_own_their_files(rule_runner: RuleRunner) -> None:
    def owners(path: str) -> set:
        return {str(a) for a in rule_runner.request(Owners, [OwnersRequest((path,))])}

    assert owners("k/boot.config") == {"k:trace"}
    assert owners("k/boot.sh") == {"k:base"}
    assert owners("k/w.sh") == {"k:app"}
    assert owners("k/p.c") == {"k:app"}
    assert owners("k/data/a.txt") == {"k:app"}


def test_a_missing_address_names_the_field(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {"bad/BUILD": 'tailored_kernel(name="t", baseline="//k:base", apps=["//k:nope"])\n'}
    )
    with pytest.raises(ExecutionError) as e:
        _deps(rule_runner, "t", "bad")
    assert "the `apps` field of bad:t" in str(e.value) and "k:nope" in str(e.value)


def test_a_missing_workload_is_an_error_of_the_graph(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {"bad/BUILD": 'app_profile(name="t", baseline="//k:base", workload="gone.sh")\n'}
    )
    with pytest.raises(ExecutionError) as e:
        _deps(rule_runner, "t", "bad")
    assert 'Unmatched glob from bad:t\'s `workload` field: "bad/gone.sh"' in str(e.value)


ADDRESS = Address("bad", target_name="t")


@pytest.mark.parametrize(
    "field, value, message",
    [
        (KernelMemoryField, "lots", "bad:t: field `memory`: 'lots' is not a memory size"),
        (KernelMemoryField, "1M", "bad:t: field `memory`: '1M' is too little memory"),
        (KernelBootTimeoutField, 0, "bad:t: field `boot_timeout`: must be greater than 0"),
        (
            KernelCmdlineField,
            "console=ttyS0 " + "x" * 2040,
            "bad:t: field `cmdline`: the kernel command line is too long",
        ),
        (
            LinuxSourceSha256Field,
            "4d41",
            "bad:t: field `sha256`: must be 64 hex digits, got '4d41'",
        ),
        (
            PrebuiltDebugSha256Field,
            "g" * 64,
            "bad:t: field `debug_sha256`: must be 64 hex digits",
        ),
    ],
    ids=[
        "memory-words",
        "memory-too-little",
        "boot-timeout-zero",
        "cmdline-too-long",
        "sha256-short",
        "sha256-not-hex",
    ],
)
def test_fields_are_refused_when_read(field, value, message) -> None:
    with pytest.raises(InvalidFieldException) as e:
        field(value, ADDRESS)
    assert message in str(e.value)
