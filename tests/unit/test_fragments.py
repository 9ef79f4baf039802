import pytest

from kernel_rules.domain.fragments import (
    FragmentError,
    config_distance,
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
