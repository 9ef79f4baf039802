"""third_party/pins.py: reading and moving the Debian pins (pure parts, and the repository's own)."""

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("pins", REPO / "third_party/pins.py")
pins = importlib.util.module_from_spec(_spec)
sys.modules["pins"] = pins
_spec.loader.exec_module(pins)

MADISON = """\
linux-image-6.1.0-56-cloud-amd64-unsigned | 6.1.192-2 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
linux-image-6.1.0-57-cloud-amd64-unsigned | 6.1.192-3 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
linux-image-6.1.0-50-cloud-amd64-unsigned | 6.1.176-1 | http://deb.debian.org/debian bookworm/main amd64 Packages
"""


def test_the_repository_pins_agree():
    assert pins.disagreements(REPO) == []


def test_lock_update_keeps_comments_and_order():
    text = "# a comment\nb=1\na=2\n\n# another=3\n"
    assert pins.read_lock(text) == {"b": "1", "a": "2"}
    assert pins.update_lock(text, {"a": "9"}) == "# a comment\nb=1\na=9\n\n# another=3\n"
    with pytest.raises(pins.PinError, match="keys not in the lock: c"):
        pins.update_lock(text, {"c": "1"})


def test_build_fields_are_replaced_only_when_declared_once():
    text = 'linux_source(\n    name="x",\n    sha256="aaa",\n    version="6.1.192",\n)\n'
    assert pins.update_build(text, {"sha256": "bbb"}) == text.replace("aaa", "bbb")
    with pytest.raises(pins.PinError, match="expected one `image_deb"):
        pins.update_build(text, {"image_deb": "x"})
    with pytest.raises(pins.PinError, match="found 2"):
        pins.build_field(text + 'x(sha256="c")\n', "sha256")


@pytest.mark.parametrize(
    "debian, upstream", [("6.1.192-3", "6.1.192"), ("6.1.76-1+deb12u1", "6.1.76")]
)
def test_upstream_version(debian, upstream):
    assert pins.upstream_version(debian) == upstream


def test_upstream_version_rejects_other_shapes():
    with pytest.raises(pins.PinError, match="not a Debian kernel version"):
        pins.upstream_version("6.1")


def test_cloud_package_names_follow_the_abi_number_of_the_build():
    assert pins.cloud_packages(MADISON, "6.1.192-3") == (
        "linux-image-6.1.0-57-cloud-amd64-unsigned",
        "linux-image-6.1.0-57-cloud-amd64-dbg",
    )
    with pytest.raises(pins.PinError, match="found 0: none"):
        pins.cloud_packages(MADISON, "6.1.192-9")


def test_deb_sha256_from_apt_cache_show():
    show = "Package: x\nVersion: 1\nSHA256: " + "ab" * 32 + "\nSize: 3\n"
    assert pins.deb_sha256(show) == "ab" * 32


def test_apply_moves_all_four_files_and_check_agrees(tmp_path):
    for path in (pins.SOURCE_LOCK, pins.SOURCE_BUILD, pins.CLOUD_LOCK, pins.CLOUD_BUILD):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, tmp_path / path)
    new = pins.Pins(
        "6.1.200-1",
        "1" * 64,
        "linux-image-6.1.0-60-cloud-amd64-unsigned",
        "linux-image-6.1.0-60-cloud-amd64-dbg",
        "2" * 64,
        "3" * 64,
    )
    changes = pins.apply(tmp_path, new)
    assert pins.disagreements(tmp_path) == []
    assert pins.read_pins(tmp_path) == new
    assert "third_party/linux/BUILD: version: 6.1.192 -> 6.1.200" in changes
    build = (tmp_path / pins.CLOUD_BUILD).read_text()
    assert 'image_deb="debs/linux-image-6.1.0-60-cloud-amd64-unsigned_6.1.200-1_amd64.deb"' in build
    assert pins.apply(tmp_path, new) == []


def test_check_names_the_file_that_disagrees(tmp_path):
    for path in (pins.SOURCE_LOCK, pins.SOURCE_BUILD, pins.CLOUD_LOCK, pins.CLOUD_BUILD):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, tmp_path / path)
    build = tmp_path / pins.SOURCE_BUILD
    build.write_text(build.read_text().replace('package_version="', 'package_version="0'))
    problems = pins.disagreements(tmp_path)
    assert len(problems) == 1 and problems[0].startswith("third_party/linux/BUILD: package_version")
