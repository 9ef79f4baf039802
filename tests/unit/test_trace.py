from kernel_rules.domain.trace import START_KERNEL_MAP, WINDOW_BEGIN, WINDOW_END, kernel_addresses, window_addresses


def _log(*addrs):
    out = []
    for a in addrs:
        out += ["----------------", "IN: ", f"0x{a:016x}:  90   nop", ""]
    return out


def test_boot_phases_rebase_physical_vmlinux_and_drop_the_rest():
    log = _log(0xFFFFFFF0, 0x000FE05B,            # firmware
               0x00100000,                          # decompressor
               0x01000000, 0x01000007,              # startup_64 at its physical address
               0xFFFFFFFF81000100,                  # virtual from here on
               0x00401000,                          # user space (busybox)
               0x01000010)                          # user address in the physical range: user
    t = kernel_addresses(log)
    assert t.kernel == {START_KERNEL_MAP + 0x01000000, START_KERNEL_MAP + 0x01000007,
                        0xFFFFFFFF81000100}
    assert t.pre_kernel_instructions == 3
    assert t.user_instructions == 2


def test_window_keeps_only_kernel_code_between_the_markers():
    log = _log(0xFFFFFFFF81000001, WINDOW_BEGIN, 0xFFFFFFFF81000002, 0x401000,
               0xFFFFFFFF81000003, WINDOW_END, 0xFFFFFFFF81000004)
    t = window_addresses(log)
    assert t.window_found
    assert t.kernel == {0xFFFFFFFF81000002, 0xFFFFFFFF81000003}
    assert t.user_instructions == 1


def test_window_without_end_marker_is_reported():
    assert not window_addresses(_log(WINDOW_BEGIN, 0xFFFFFFFF81000002)).window_found
