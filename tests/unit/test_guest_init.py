from kernel_rules.domain.guest_init import render_app_init


def test_build_values_are_shell_quoted():
    text = render_app_init("examples/x:app", "w'; rm -rf / #.sh")
    assert "/bin/sh /app/'w'\"'\"'; rm -rf / #.sh'" in text
    assert "KR_WINDOW_REQUEST" in text and "/bin/kr-window-begin" in text
