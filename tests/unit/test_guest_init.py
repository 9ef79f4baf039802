from kernel_rules.domain.guest_init import render_app_init


def test_build_values_are_shell_quoted():
    text = render_app_init("examples/x:app", "w'; rm -rf / #.sh")
    assert "/bin/sh /app/'w'\"'\"'; rm -rf / #.sh'" in text
    assert "KR_WINDOW_REQUEST" in text and "/bin/kr-window-begin" in text


def test_app_init_never_waits_for_the_host():
    text = render_app_init("examples/x:app", "w.sh")
    assert text.index("echo KR_WINDOW_REQUEST") < text.index("/bin/kr-window-begin")
    assert "read -r ack" not in text  # nothing in the run depends on when the host answers


def test_modules_load_only_on_a_kernel_with_module_support():
    from kernel_rules.domain.guest_init import BOOT_INIT

    for text in (BOOT_INIT, render_app_init("examples/x:app", "w.sh")):
        assert '[ -d "$kr_modules" ] && [ -e /proc/modules ]' in text
        assert "KR_MODSECT" in text
