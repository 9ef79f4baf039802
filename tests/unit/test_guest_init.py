from kernel_rules.domain.guest.init import render_app_init


def test_build_values_are_shell_quoted():
    text = render_app_init("examples/x:app", "w'; rm -rf / #.sh")
    assert "/bin/sh /app/'w'\"'\"'; rm -rf / #.sh'" in text
    assert "KR_WINDOW_REQUEST" in text and "/bin/kr-window-begin" in text


def test_app_init_never_waits_for_the_host():
    text = render_app_init("examples/x:app", "w.sh")
    assert text.index("echo KR_WINDOW_REQUEST") < text.index("/bin/kr-window-begin")
    assert "read -r ack" not in text  # nothing in the run depends on when the host answers


def test_modules_load_only_on_a_kernel_with_module_support():
    from kernel_rules.domain.guest.init import BOOT_INIT

    for text in (BOOT_INIT, render_app_init("examples/x:app", "w.sh")):
        assert '[ -d "$kr_modules" ] && [ -e /proc/modules ]' in text
        assert "KR_MODSECT" in text


def test_boot_init_confirms_its_mode_and_reports_the_boot_step():
    from kernel_rules.domain.guest.init import BOOT_INIT

    step = BOOT_INIT.index("/bin/sh /etc/kernel_rules/boot.sh")
    assert BOOT_INIT.index("kr_boot=$?", step) < BOOT_INIT.index("KERNEL_RULES_INIT_OK")
    check = BOOT_INIT.index('*" kernel_rules.mode=check "*)')
    assert (
        BOOT_INIT.index("dmesg -n 1", check)
        < BOOT_INIT.index('echo "KR_MODE check boot_script=$kr_boot"', check)
        < BOOT_INIT.index("reboot -f", check)
    )
    assert 'echo "KR_MODE interactive boot_script=$kr_boot cmdline_bytes=' in BOOT_INIT


def test_app_init_reports_the_workload_framed_after_the_window():
    text = render_app_init("examples/x:app", "w.sh")
    listener = text.index("read -r kr_request")
    begin, end = text.index("/bin/kr-window-begin"), text.index("/bin/kr-window-end")
    assert listener < text.index("while [ $quiet -lt 3 ]") < begin  # blocked before the window
    run = text.index("/bin/sh /app/w.sh < /dev/null > /tmp/kr-workload.log 2>&1")
    assert begin < run < end
    after = text[end:]
    assert after.index("kill $kr_listener") < after.index('kr_frame "KR_WORKLOAD_STATUS $status"')
    assert "cat /tmp/kr-workload.log\n" not in text  # the output never reaches the console raw
    frame = text[text.index("kr_frame() {") :]
    assert frame.index("dmesg -n 1") < frame.index("echo KR_OUTPUT_BEGIN")


def test_boot_init_runs_the_user_space_marker_first():
    from kernel_rules.domain.guest.init import BOOT_INIT

    assert BOOT_INIT.splitlines()[:2] == ["#!/bin/sh", "/bin/kr-userspace-begin"]


def test_app_init_runs_the_baselines_boot_step_before_the_window_and_gates_the_workload():
    text = render_app_init("examples/x:app", "w.sh")
    step = text.index("/bin/sh /etc/kernel_rules/boot.sh < /dev/null")
    assert text.index("if [ -f /etc/kernel_rules/boot.sh ]") < step
    assert step < text.index("KERNEL_RULES_INIT_OK") < text.index("/bin/kr-window-begin")
    gate = text.index('if [ "$kr_boot" = 0 ]; then')
    assert gate < text.index("/bin/sh /app/w.sh") < text.index("status=$kr_boot")
    assert "the boot step (boot_script) exited with status $kr_boot" in text
