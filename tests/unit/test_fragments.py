import pytest

from kernel_rules.domain.kconfig.fragments import (
    FragmentError,
    config_distance,
    decode,
    fragment_file_problem,
    merge_requests,
    parse_config,
    parse_fragment,
)


def test_parses_values_and_not_set():
    reqs = parse_fragment(
        'CONFIG_A=y\n# comment\n\n# CONFIG_B is not set\nCONFIG_C="x y"\nCONFIG_D=0x10\nCONFIG_E=-3\n',
        "f.config",
    )
    assert [(r.symbol, r.value, r.origin) for r in reqs] == [
        ("A", "y", "f.config:1"),
        ("B", "n", "f.config:4"),
        ("C", '"x y"', "f.config:5"),
        ("D", "0x10", "f.config:6"),
        ("E", "-3", "f.config:7"),
    ]


@pytest.mark.parametrize(
    "line",
    ["CONFIG_A", "A=y", "CONFIG_A=yes", 'CONFIG_A="unterminated', "CONFIG_A y", "CONFIG_=y"],
)
def test_malformed_lines_name_file_and_line(line):
    with pytest.raises(FragmentError, match=r"^frag\.config:2: malformed"):
        parse_fragment(f"CONFIG_OK=y\n{line}\n", "frag.config")


def test_later_fragment_wins_and_keeps_its_origin():
    merged = merge_requests([("a", "CONFIG_X=y\nCONFIG_Y=y\n"), ("b", "# CONFIG_X is not set\n")])
    assert merged["X"].value == "n" and merged["X"].origin == "b:1"
    assert merged["Y"].origin == "a:2"


def test_distance_counts_symbols_with_different_values():
    a = parse_config("CONFIG_A=y\nCONFIG_B=y\n")
    b = parse_config("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=m\n")
    assert config_distance(a, b) == 2
    assert config_distance(a, a) == 0
    assert config_distance({}, {"Z": "n"}) == 0


@pytest.mark.parametrize(
    "value, char",
    [
        ('"$(shell touch /tmp/x)"', "$"),
        ('"${HOME}"', "$"),
        ('"`touch /tmp/x`"', "`"),
        ('"a\\\\"', "\\"),
        ('"a\\"b"', "\\"),
        ('"-x;touch /tmp/x"', ";"),
        ('"a|b"', "|"),
        ('"a&b"', "&"),
        ('"a>/tmp/x"', ">"),
        ('"a<b"', "<"),
        ('"a\'b"', "'"),
        ('"a#b"', "#"),
    ],
)
def test_string_values_with_make_or_shell_metacharacters_are_refused(value, char):
    with pytest.raises(FragmentError) as e:
        parse_fragment(f"CONFIG_OK=y\nCONFIG_LOCALVERSION={value}\n", "frag.config")
    message = str(e.value)
    assert message.startswith("frag.config:2: CONFIG_LOCALVERSION: the string value ")
    assert "never make or shell code" in message
    assert f"contains {char!r}: " in message


@pytest.mark.parametrize("line", ['CONFIG_A="a\tb"', 'CONFIG_A="a\rCONFIG_B=y"', 'CONFIG_A="\x1b"'])
def test_control_characters_in_a_line_are_refused(line):
    with pytest.raises(FragmentError, match=r"^frag\.config:1: .*control character"):
        parse_fragment(line + "\n", "frag.config")


def test_ordinary_string_values_are_data():
    reqs = parse_fragment(
        'CONFIG_CC_VERSION_TEXT="gcc (Debian 12.2.0-14+deb12u1) 12.2.0"\n'
        'CONFIG_LSM="landlock,lockdown,yama"\nCONFIG_DEFAULT_HOSTNAME="(none)"\n'
        'CONFIG_CC_IMPLICIT_FALLTHROUGH="-Wimplicit-fallthrough=5"\nCONFIG_CMDLINE="café=1 *"\n'
        'CONFIG_EMPTY=""\n',
        "f",
    )
    assert [r.value for r in reqs][-1] == '""' and len(reqs) == 6


def test_lines_end_at_newline_only():
    """Kconfig and make split lines at \\n: a form feed or \\x85 inside a line is not a break."""
    with pytest.raises(FragmentError, match=r"^f:1: .*control character"):
        parse_fragment('CONFIG_A="x"\x0cCONFIG_B=y\n', "f")
    assert parse_fragment("CONFIG_A=y\r\nCONFIG_B=y\r\n", "f")[1].origin == "f:2"


def test_non_utf8_bytes_name_file_line_and_byte():
    with pytest.raises(FragmentError) as e:
        decode(b'CONFIG_A=y\nCONFIG_DEFAULT_HOSTNAME="caf\xe9"\n', "bad/latin1.config")
    assert str(e.value) == (
        "bad/latin1.config:2: byte 0xe9 (column 29) is not UTF-8: fragments "
        "and .config files are UTF-8 text"
    )
    assert decode('CONFIG_X="é"\n'.encode(), "f") == 'CONFIG_X="é"\n'


@pytest.mark.parametrize(
    "name, problem",
    [
        ("*.config", "is a glob"),
        ("frag?.config", "is a glob"),
        ("[ab].config", "is a glob"),
        ("!boot.config", "is a glob"),
        ("a=b.config", "holds `=`"),
        ("/etc/kernel.config", "is an absolute path"),
        ("../../../outside.config", "is outside the repository"),
        ("a\nCONFIG_X=y", "control character"),
        ("", "is empty"),
    ],
)
def test_fragment_file_names_that_cannot_name_one_file(name, problem):
    assert problem in fragment_file_problem("examples/tracing", name)


def test_fragment_file_names_that_are_fine():
    assert fragment_file_problem("examples/tracing", "../minimal/boot.config") is None
    assert fragment_file_problem("examples/tracing", "universe.config") is None
    assert fragment_file_problem("", "sub/dir/x.config") is None
