from kernel_rules.domain.kconfig.config_check import find_violations
from kernel_rules.domain.kconfig.fragments import merge_requests


def test_violations_compare_final_values_and_treat_absent_as_n():
    requests = merge_requests(
        [("f", "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=16\nCONFIG_D=y\n")]
    )
    final = {"A": "y", "C": "0x10", "D": "n"}
    found = find_violations(requests, final)
    assert [(v.request.symbol, v.got) for v in found] == [("D", "n")]
    assert found[0].message() == "f:4: CONFIG_D: requested y, got n"
