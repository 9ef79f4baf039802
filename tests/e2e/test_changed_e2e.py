"""The BUILD graph of the pipeline, for real: `pants dependencies`, `dependents`, `filedeps`,
file arguments and `--changed-since` in a git repository holding a copy of the examples. Nothing
here configures, builds or boots a kernel: these goals only read BUILD files and the files they
name."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.e2e.workspace import Workspace

BASELINE_APPS = {
    "examples/tracing:httpd",
    "examples/tracing:ipc",
    "examples/tracing:sqlite",
    "examples/tracing:proc-reader",
}
TAILORED_ON_Q35 = {
    f"examples/tailored:{k}"
    for k in (
        "ipc",
        "httpd",
        "sqlite",
        "proc-reader",
        "all",
        "ipc-unminimised",
        "proc-reader-minimised",
        "q35-minimised",
    )
}
IPC_KERNELS = {
    "examples/tailored:ipc",
    "examples/tailored:all",
    "examples/tailored:ipc-unminimised",
}
STATIC_COVERAGE = {f"examples/static-coverage:{k}" for k in ("timer", "traced", "static")}
SERVICES = ("web", "kv", "db", "scheduler", "watcher")
SERVICES_BASELINE = {
    "examples/services:baseline",
    *(f"examples/services/{s}:{t}" for s in SERVICES for t in ("app", "kernel")),
}
EVERY_KERNEL_OF_THE_TRACE_KERNEL = {
    "examples/tracing:trace-kernel",
    "examples/tracing:qemu-q35",
    "examples/tracing:qemu-q35-lo",
    *BASELINE_APPS,
    *TAILORED_ON_Q35,
    *STATIC_COVERAGE,
    *SERVICES_BASELINE,
}


def _git(repo, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=kernel_rules", "-c", "user.email=kernel_rules@localhost", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory, tarball):
    """A copy of the repository that is a git repository with one commit."""
    base = tmp_path_factory.mktemp("changed")
    w = Workspace(base / "repo", base / "state", tarball)
    (w.root / ".gitignore").write_text("/dist/\n/.pants.d/\n/.pids/\n*.tar.xz\n*.deb\n")
    _git(w.root, "init", "-q", "-b", "main")
    _git(w.root, "add", "-A")
    _git(w.root, "commit", "-q", "-m", "examples")
    yield w
    w.stop_pantsd()


def _lines(w: Workspace, *args: str) -> set:
    result = w.pants(*args, timeout=600)
    assert result.returncode == 0, result.output[-4000:]
    assert "Traceback" not in result.output, result.output[-4000:]
    return {line for line in result.stdout.splitlines() if line.strip()}


def _changed(w: Workspace, path: str) -> set:
    """What `--changed-since=HEAD~1 --changed-dependents=transitive list` picks after a commit
    that appends an empty line to `path`."""
    with open(w.root / path, "a") as f:
        f.write("\n")
    _git(w.root, "commit", "-q", "-am", f"change {path}")
    return _lines(w, "--changed-since=HEAD~1", "--changed-dependents=transitive", "list")


def test_address_fields_are_dependencies(repo):
    assert _lines(repo, "dependencies", "examples/tailored:ipc") == {
        "examples/tracing:qemu-q35",
        "examples/tracing:ipc",
    }
    assert _lines(repo, "dependencies", "examples/tracing:ipc") == {"examples/tracing:qemu-q35"}
    assert _lines(repo, "dependencies", "examples/tracing:qemu-q35") == {
        "examples/tracing:trace-kernel"
    }
    # `../minimal/boot.config` is owned by examples/minimal:kernel
    assert _lines(repo, "dependencies", "examples/tracing:trace-kernel") == {
        "third_party/linux:linux-6.1",
        "examples/minimal:kernel",
    }
    assert _lines(repo, "dependencies", "examples/debian-cloud:virtio") == {
        "third_party/debian:cloud-amd64"
    }
    assert _lines(repo, "dependencies", "third_party/debian:cloud-amd64") == {
        "third_party/linux:linux-6.1"
    }
    assert _lines(repo, "dependents", "examples/tracing:ipc") == IPC_KERNELS
    transitive = _lines(repo, "dependents", "--transitive", "examples/tracing:trace-kernel")
    assert transitive == EVERY_KERNEL_OF_THE_TRACE_KERNEL - {"examples/tracing:trace-kernel"}


def test_peek_shows_the_inferred_dependencies(repo):
    result = repo.pants("peek", "examples/tailored:all", timeout=600)
    assert result.returncode == 0, result.output[-4000:]
    [data] = json.loads(result.stdout)
    assert set(data["dependencies"]) == BASELINE_APPS | {"examples/tracing:qemu-q35"}


def test_files_named_by_fields_find_their_targets(repo):
    assert _lines(repo, "list", "examples/tracing/ipc_workload.sh") == {"examples/tracing:ipc"}
    assert _lines(repo, "list", "examples/tracing/ipc_demo.c") == {"examples/tracing:ipc"}
    assert _lines(repo, "list", "examples/tracing/www/index.html") == {"examples/tracing:httpd"}
    assert _lines(repo, "list", "examples/tracing/boot_lo.sh") == {"examples/tracing:qemu-q35-lo"}
    assert _lines(repo, "list", "examples/tracing/universe.config") == {
        "examples/tracing:trace-kernel"
    }


def test_filedeps_lists_the_primary_sources(repo):
    # Pants' filedeps lists the BUILD file and one sources field per target: `files` of an
    # app_profile, `boot_script` of a baseline (see docs/targets.md).
    assert _lines(repo, "filedeps", "examples/tracing:httpd") == {
        "examples/tracing/BUILD",
        "examples/tracing/www/index.html",
    }
    assert _lines(repo, "filedeps", "examples/tracing:qemu-q35-lo") == {
        "examples/tracing/BUILD",
        "examples/tracing/boot_lo.sh",
    }
    transitive = _lines(repo, "filedeps", "--transitive", "examples/tailored:ipc")
    assert {
        "examples/tailored/BUILD",
        "examples/tracing/BUILD",
        "examples/minimal/BUILD",
        "third_party/linux/BUILD",
    } <= transitive


def test_changed_since_picks_the_kernels_a_change_affects(repo):
    assert _changed(repo, "examples/tracing/ipc_workload.sh") == {
        "examples/tracing:ipc",
        *IPC_KERNELS,
    }
    assert _changed(repo, "examples/tracing/ipc_demo.c") == {"examples/tracing:ipc", *IPC_KERNELS}
    assert _changed(repo, "examples/tracing/universe.config") == EVERY_KERNEL_OF_THE_TRACE_KERNEL
    assert _changed(repo, "examples/minimal/boot.config") == {
        "examples/minimal:kernel",
        *EVERY_KERNEL_OF_THE_TRACE_KERNEL,
    }
    assert _changed(repo, "examples/debian-cloud/nginx.conf") == {
        "examples/debian-cloud:nginx",
        "examples/debian-cloud:nginx-kernel",
        "examples/debian-cloud:all-kernel",
        "examples/debian-cloud:nginx-minimised",
        "examples/debian-cloud:all-minimised",
    }


def test_changed_since_picks_one_service_or_every_service_of_the_baseline(repo):
    for service in SERVICES:
        assert _changed(repo, f"examples/services/{service}/workload.sh") == {
            f"examples/services/{service}:app",
            f"examples/services/{service}:kernel",
        }, service
    assert _changed(repo, "examples/services/kv/kv.c") == {
        "examples/services/kv:app",
        "examples/services/kv:kernel",
    }
    assert _changed(repo, "examples/services/boot.sh") == SERVICES_BASELINE


def test_a_missing_workload_fails_the_changed_list_before_any_build(repo):
    d = repo.root / "examples/broken"
    d.mkdir()
    (d / "BUILD").write_text(
        'app_profile(name="app", baseline="//examples/tracing:qemu-q35", workload="gone.sh")\n'
    )
    try:
        _git(repo.root, "add", "examples/broken/BUILD")
        _git(repo.root, "commit", "-q", "-m", "an app without its workload")
        result = repo.pants(
            "--changed-since=HEAD~1", "--changed-dependents=transitive", "list", timeout=600
        )
    finally:
        _git(repo.root, "rm", "-q", "-r", "examples/broken")
        _git(repo.root, "commit", "-q", "-m", "remove it")
    assert result.returncode != 0
    assert (
        "Unmatched glob from examples/broken:app's `workload` field: "
        '"examples/broken/gone.sh"' in result.output
    ), result.output[-3000:]
    assert "Traceback" not in result.output


def test_qemu_accel_takes_one_of_its_words(repo):
    result = repo.pants("--qemu-accel=kvn", "list", "examples/tracing:ipc", timeout=600)
    assert result.returncode != 0
    assert "Invalid choice 'kvn'. Choose from: auto, tcg, kvm" in result.output, result.output
    assert _lines(repo, "--qemu-accel=tcg", "list", "examples/tracing:ipc") == {
        "examples/tracing:ipc"
    }
