"""What a configuration value may name: files inside the kernel tree only, never host files.

Some string options name files that Kbuild reads while it builds and puts into the kernel
(`PATH_OPTIONS`: the built-in initramfs, firmware blobs, signing and trusted keys, ...). A build's
cache key holds the source tarball's digest, the fragments and the final `.config`, but not the
host's files: `CONFIG_INITRAMFS_SOURCE="/some/host/dir"` would put that directory into the kernel,
and a later change to it would go unseen. So a path-valued option may only be empty or hold
relative paths inside the kernel source or build tree (no leading `/` or `~`, no `..`, no `:` as
in a `pkcs11:` URI, only the characters of `SAFE_PATH`); anything else is refused, naming where
the value came from and why.

The policy applies where values enter (fragments, `base_config`, `force`) and to the final
`.config` a build uses, so that a Kconfig default (`EXTRA_FIRMWARE_DIR` is "/lib/firmware" as
soon as `EXTRA_FIRMWARE` is set) cannot bring a host path in either. Options that name paths in
the *guest* (`MODPROBE_PATH`, `DEFAULT_INIT`, ...) are not host files and are not restricted.

Pure Python, no kernel tree: it runs in the Pants rules, in BUILD field validation and inside
the configure, build and composition processes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, List, Mapping, Optional, Tuple

from kernel_rules.domain.kconfig.fragments import FragmentError, Request, parse_line

# Kconfig string options whose value names host files or directories that Kbuild reads at build
# time (Linux 6.1, x86), and what Kbuild does with them.
PATH_OPTIONS = {
    "INITRAMFS_SOURCE": "files and directories packed into the built-in initramfs",
    "EXTRA_FIRMWARE": "firmware files built into the kernel (read from EXTRA_FIRMWARE_DIR)",
    "EXTRA_FIRMWARE_DIR": "the directory the EXTRA_FIRMWARE files are read from",
    "MODULE_SIG_KEY": "the key modules are signed with (a file or a PKCS#11 URI)",
    "SYSTEM_TRUSTED_KEYS": "X.509 certificates built into the system keyring",
    "SYSTEM_REVOCATION_KEYS": "X.509 certificates built into the blacklist keyring",
    "SYSTEM_BLACKLIST_HASH_LIST": "the hash list built into the blacklist keyring",
    "ACPI_CUSTOM_DSDT_FILE": "the DSDT table compiled into the kernel",
    "BOOT_CONFIG_EMBED_FILE": "the bootconfig file embedded in the kernel",
    "CFG80211_EXTRA_REGDB_KEYDIR": "the directory of regulatory database keys built in",
    "UNUSED_KSYMS_WHITELIST": "the list of exported symbols the build keeps",
}
SAFE_PATH = re.compile(r"^[A-Za-z0-9._+,/-]+$")
_SYMBOL = re.compile(r"^[A-Za-z0-9_]+$")
FIX = 'use "" or a path relative to the kernel source tree, without ".."'


class PolicyError(ValueError):
    """A value the policy refuses; the message names where it came from and why."""


@dataclass(frozen=True)
class PolicyViolation:
    """A path-valued option whose value names something outside the kernel tree."""

    symbol: str
    value: str  # as in a .config: "\"/etc\""
    origin: str  # file:line, a BUILD field, or the final .config
    reason: str

    def message(self) -> str:
        return f"{self.origin}: CONFIG_{self.symbol}={self.value}: {self.reason}"


def path_problem(symbol: str, value: str) -> Optional[str]:
    """Why `value` (as written in a .config) cannot be the value of `symbol`, or None.

    Only options of PATH_OPTIONS are restricted; `n` (not set) and "" are always allowed."""
    what = PATH_OPTIONS.get(symbol)
    if what is None or not (len(value) >= 2 and value[0] == value[-1] == '"'):
        return None
    for item in value[1:-1].split():
        why = _item_problem(item)
        if why:
            return (
                f"{item!r} {why}; this option names {what}, which Kbuild reads while it "
                f"builds, and host files are not part of the cache key: {FIX}"
            )
    return None


def _item_problem(item: str) -> Optional[str]:
    if item.startswith("/"):
        return "is an absolute path (a host file outside the kernel source and build tree)"
    if item.startswith("~"):
        return "starts with `~` (the home directory of whoever runs the build)"
    if ":" in item:
        return "holds `:` (a URI such as `pkcs11:` names a host key store, not a file of the tree)"
    if ".." in item.split("/"):
        return "has a `..` component (it leaves the kernel source and build tree)"
    if not SAFE_PATH.match(item):
        bad = next(ch for ch in item if not SAFE_PATH.match(ch))
        return (
            f"contains {bad!r} (file names here may only use letters, digits and `._+,/-`: "
            "no globs or make patterns)"
        )
    return None


def check_requests(requests: Iterable[Request]) -> List[PolicyViolation]:
    """The requests (fragment, base config or `force` values) the policy refuses."""
    out = []
    for r in requests:
        why = path_problem(r.symbol, r.value)
        if why:
            out.append(PolicyViolation(r.symbol, r.value, r.origin, why))
    return out


def check_final(
    values: Mapping[str, str], requests: Mapping[str, Request], origin: str
) -> List[PolicyViolation]:
    """The values of a final `.config` the policy refuses. A value some request set is named by
    the request's origin; any other came from `origin` (e.g. the base config or a Kconfig default,
    which `origin` should say)."""
    out = []
    for symbol in sorted(PATH_OPTIONS):
        value = values.get(symbol, "n")
        why = path_problem(symbol, value)
        if why:
            req = requests.get(symbol)
            where = req.origin if req is not None and req.value == value else origin
            out.append(PolicyViolation(symbol, value, where, why))
    return out


def force_value(line: str, origin: str) -> Tuple[str, str]:
    """(symbol, value) of one `force` entry: a `.config` line (`CONFIG_X=y`,
    `# CONFIG_X is not set`, `CONFIG_N=4`, `CONFIG_S="text"`) or the same without `CONFIG_`.
    Raises PolicyError prefixed with `origin` for a malformed line, a string value that is not
    plain data (see fragments) and a path-valued option naming a host file."""
    if any(ord(ch) < 0x20 for ch in line):
        raise PolicyError(
            f"{origin}: {line!r} holds a newline or another control character: "
            "each entry is one `.config` line"
        )
    text = line if line.lstrip().startswith(("CONFIG_", "#")) else "CONFIG_" + line.strip()
    try:
        parsed = parse_line(text, origin)
    except FragmentError as e:
        raise PolicyError(str(e)) from None
    if parsed is None:
        raise PolicyError(f"{origin}: {line!r} is not a `CONFIG_NAME=value` line")
    why = path_problem(*parsed)
    if why:
        raise PolicyError(f"{origin}: CONFIG_{parsed[0]}={parsed[1]}: {why}")
    return parsed


def forbid_symbol(name: str, origin: str) -> str:
    """The symbol (without `CONFIG_`) of one `forbid` entry; raises PolicyError for anything
    that is not a symbol name."""
    symbol = name.strip()
    symbol = symbol[len("CONFIG_") :] if symbol.startswith("CONFIG_") else symbol
    if not _SYMBOL.match(symbol):
        raise PolicyError(f"{origin}: {name!r} is not a Kconfig symbol name (`X` or `CONFIG_X`)")
    return symbol
