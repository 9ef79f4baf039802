"""Fields of `kernel_baseline` and `app_profile` refuse bad values when the BUILD file is read,
naming the target and the field."""

from __future__ import annotations

import pytest
from pants.engine.addresses import Address
from pants.engine.target import InvalidFieldException

from kernel_rules.targets.app_profile import AppSuccessField
from kernel_rules.targets.baseline import BaselineCmdlineField
from kernel_rules.targets.fields import (
    MachineCpusField,
    MachineMemoryField,
    MachineTypeField,
    TraceTimeoutField,
)

ADDRESS = Address("bad", target_name="t")


@pytest.mark.parametrize(
    "field, value, message",
    [
        (
            AppSuccessField,
            "([",
            "bad:t: field `success`: '([' is not a regular expression (Python "
            "syntax): unterminated character set at position 1",
        ),
        (
            MachineMemoryField,
            "-5M",
            "bad:t: field `memory`: '-5M' is not a memory size: expected a "
            "number of MiB or a number with a K, M, G or T suffix",
        ),
        (MachineMemoryField, "0", "bad:t: field `memory`: '0' is too little memory: at least 16M"),
        (MachineCpusField, 0, "bad:t: field `cpus`: must be greater than 0, but was 0"),
        (MachineCpusField, -2, "bad:t: field `cpus`: must be greater than 0, but was -2"),
        (TraceTimeoutField, -5, "bad:t: field `timeout`: must be greater than 0, but was -5"),
        (TraceTimeoutField, 0, "bad:t: field `timeout`: must be greater than 0, but was 0"),
        (MachineTypeField, "", "bad:t: field `machine`: '' is not a QEMU machine type"),
        (MachineTypeField, "-q35", "bad:t: field `machine`: '-q35' is not a QEMU machine type"),
        (
            BaselineCmdlineField,
            "console=ttyS0 " + "x" * 2002,
            "bad:t: field `cmdline`: the kernel command line is too long: 2016 bytes, 2048 with what "
            "kernel_rules appends ('nokaslr kernel_rules.mode=check')",
        ),
    ],
)
def test_bad_values_are_refused_naming_target_and_field(field, value, message):
    with pytest.raises(InvalidFieldException) as e:
        field(value, ADDRESS)
    assert str(e.value).startswith(message), str(e.value)


@pytest.mark.parametrize(
    "field, value",
    [
        (AppSuccessField, "^42$"),
        (AppSuccessField, None),
        (MachineMemoryField, "1G"),
        (MachineCpusField, 2),
        (TraceTimeoutField, 1),
        (MachineTypeField, "pc"),
        (BaselineCmdlineField, "console=ttyS0 " + "x" * 2001),
    ],
)
def test_good_values_pass(field, value):
    assert field(value, ADDRESS).value == value


def test_defaults_pass():
    for field in (
        MachineMemoryField,
        MachineCpusField,
        TraceTimeoutField,
        MachineTypeField,
        BaselineCmdlineField,
    ):
        field(None, ADDRESS)
