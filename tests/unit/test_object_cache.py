"""The object cache's pure parts: URL checks, redaction, ccache's environment and stats log."""

from __future__ import annotations

import os

import pytest

from kernel_rules.domain.build import object_cache


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:6379", "redis+unix:/run/redis.sock", "http://cache:8080/c", "file:/srv/c"],
)
def test_ccache_remote_storage_urls_are_accepted(url):
    assert object_cache.url_problem(url) is None


@pytest.mark.parametrize(
    "url, words",
    [
        ("127.0.0.1:6379", "not a ccache remote storage URL"),
        ("redis://a|file:/tmp/x", "holds a space, `|`"),
        ("redis://a b", "holds a space, `|`"),
        ("ftp://x", "not a ccache remote storage URL"),
    ],
)
def test_other_values_are_refused_with_the_reason(url, words):
    assert words in object_cache.url_problem(url)


def test_the_password_is_not_shown():
    assert object_cache.redacted("redis://:s3cret@cache:6379") == "redis://:***@cache:6379"
    assert object_cache.redacted("redis://user:s3cret@cache") == "redis://user:***@cache"
    assert object_cache.redacted("redis://cache:6379") == "redis://cache:6379"


def test_make_env_routes_gcc_through_ccache_remote_only_without_host_paths(tmp_path):
    env = object_cache.make_env(str(tmp_path), "/usr/bin/ccache", "redis://cache:6379")
    masquerade = env["PATH"].split(os.pathsep)[0]
    assert os.readlink(os.path.join(masquerade, "gcc")) == "/usr/bin/ccache"
    assert env["CCACHE_REMOTE_STORAGE"] == "redis://cache:6379"
    assert env["CCACHE_REMOTE_ONLY"] == "true"
    assert env["CCACHE_BASEDIR"] == os.path.realpath(tmp_path)
    assert env["CCACHE_NOHASHDIR"] == "true" and env["CCACHE_COMPILERCHECK"] == "content"
    # again (another build): the link is kept, or replaced when ccache moved
    object_cache.make_env(str(tmp_path), "/usr/local/bin/ccache", "redis://cache:6379")
    assert os.readlink(os.path.join(masquerade, "gcc")) == "/usr/local/bin/ccache"


def test_stats_log_counts_hits_misses_and_uncacheable_calls(tmp_path):
    log = tmp_path / "stats.log"
    log.write_text(
        "# ../../../sources/x/linux-source-6.1/kernel/fork.c\n"
        "direct_cache_hit\nremote_storage_hit\n"
        "# ../../../sources/x/linux-source-6.1/fs/signalfd.c\n"
        "cache_miss\ndirect_cache_miss\npreprocessed_cache_miss\nremote_storage_miss\n"
        "# init/version.c\n"
        "preprocessed_cache_hit\n"
        "# \n"
        "no_input_file\n"
    )
    stats = object_cache.read_stats(str(log))
    assert stats == {
        "hits": 2,
        "misses": 1,
        "uncacheable": 1,
        "missed": ["../../../sources/x/linux-source-6.1/fs/signalfd.c"],
    }
    assert object_cache.read_stats(str(tmp_path / "none")) == {
        "hits": 0,
        "misses": 0,
        "uncacheable": 0,
        "missed": [],
    }


def test_make_argv_maps_the_relative_source_path_only_with_the_object_cache(tmp_path):
    from kernel_rules.domain.build.kbuild import make_argv

    src = tmp_path / "cache/sources/abc/linux"
    tree = tmp_path / "cache/trees/abc/0"
    src.mkdir(parents=True)
    tree.mkdir(parents=True)
    plain = make_argv(str(src), str(tree), "x86_64", 2, ["bzImage"])
    cached = make_argv(str(src), str(tree), "x86_64", 2, ["bzImage"], relative_src=True)
    assert not any("../../../sources/abc/linux=" in a for a in plain)
    for flags in ("KCFLAGS=", "KAFLAGS="):
        [arg] = [a for a in cached if a.startswith(flags)]
        assert "-ffile-prefix-map=../../../sources/abc/linux=/kernel/src" in arg
        assert f"-ffile-prefix-map={src}=/kernel/src" in arg
