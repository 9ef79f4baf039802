from kernel_rules.domain.guest.protocol import WINDOW_BEGIN, WINDOW_END
from kernel_rules.domain.trace.log import START_KERNEL_MAP, kernel_addresses, window_addresses


def _log(*addrs):
    out = []
    for a in addrs:
        out += ["----------------", "IN: ", f"0x{a:016x}:  90   nop", ""]
    return out


def test_boot_phases_rebase_physical_vmlinux_and_drop_the_rest():
    log = _log(
        0xFFFFFFF0,
        0x000FE05B,  # firmware
        0x00100000,  # decompressor
        0x01000000,
        0x01000007,  # startup_64 at its physical address
        0xFFFFFFFF81000100,  # virtual from here on
        0x00401000,  # user space (busybox)
        0x01000010,
    )  # user address in the physical range: user
    t = kernel_addresses(log)
    assert t.kernel == {
        START_KERNEL_MAP + 0x01000000,
        START_KERNEL_MAP + 0x01000007,
        0xFFFFFFFF81000100,
    }
    assert t.pre_kernel_instructions == 3
    assert t.user_instructions == 2


def test_window_keeps_only_kernel_code_between_the_markers():
    log = _log(
        0xFFFFFFFF81000001,
        WINDOW_BEGIN,
        0xFFFFFFFF81000002,
        0x401000,
        0xFFFFFFFF81000003,
        WINDOW_END,
        0xFFFFFFFF81000004,
    )
    t = window_addresses(log)
    assert t.window_found
    assert t.kernel == {0xFFFFFFFF81000002, 0xFFFFFFFF81000003}
    assert t.user_instructions == 1


def test_window_without_end_marker_is_reported():
    assert not window_addresses(_log(WINDOW_BEGIN, 0xFFFFFFFF81000002)).window_found


def test_a_boot_splits_at_the_user_space_marker_and_code_run_again_is_in_both_phases():
    from kernel_rules.domain.guest.protocol import USERSPACE_BEGIN

    log = _log(
        0x01000000,  # startup_64, physical: init
        0xFFFFFFFF81000100,
        0xFFFFFFFF81000200,
        0x00401000,  # busybox sh, before the marker
        USERSPACE_BEGIN,  # the guest stopped here; logged again after
        0xFFFFFFFF81000200,
        0xFFFFFFFF81000300,
        USERSPACE_BEGIN,
    )  # a second block there changes nothing
    t = kernel_addresses(log)
    assert t.userspace_found
    assert t.phases == {
        "init": {START_KERNEL_MAP + 0x01000000, 0xFFFFFFFF81000100, 0xFFFFFFFF81000200},
        "boot": {0xFFFFFFFF81000200, 0xFFFFFFFF81000300},
    }
    assert t.kernel == t.phases["init"] | t.phases["boot"]
    assert t.phases_of(0xFFFFFFFF81000200) == {"init", "boot"}
    assert t.phases_of(0xFFFFFFFF81000100) == {"init"}
    assert t.user_instructions == 3


def test_a_boot_without_the_marker_is_all_init():
    t = kernel_addresses(_log(0xFFFFFFFF81000100, 0x00401000, 0xFFFFFFFF81000200))
    assert not t.userspace_found
    assert t.phases == {"init": {0xFFFFFFFF81000100, 0xFFFFFFFF81000200}, "boot": set()}


def test_a_window_is_the_app_phase():
    t = window_addresses(_log(WINDOW_BEGIN, 0xFFFFFFFF81000002, WINDOW_END))
    assert t.phases == {"app": {0xFFFFFFFF81000002}}
