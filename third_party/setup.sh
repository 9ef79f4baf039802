#!/usr/bin/env bash
# Sets up everything kernel_rules needs on a fresh Debian 12 machine, idempotently:
#   1. a Python 3.9 virtualenv (.venv) with the pinned tools of third_party/python/requirements.txt
#   2. the Debian packages of third_party/system-packages.txt (apt-get when root; otherwise the
#      exact command to run is printed)
#   3. CPython 3.11 wheels for sandboxed processes (third_party/python/sandbox-requirements.txt)
#   4. the Linux source tarball of third_party/linux/linux-source.lock, copied into
#      third_party/linux/ and verified against its sha256
# `setup.sh --check` exits 0 at once when a previous setup of the same pins is complete.
# `setup.sh --debian-cloud` also sets up examples/debian-cloud (docs/debian-cloud.md):
#   6. Debian's cloud kernel packages of third_party/debian/cloud-kernel.lock, fetched with
#      apt-get into third_party/debian/debs/ and verified against their sha256
#   7. the server programs of third_party/debian/example-packages.txt, installed without starting
#      their services on this machine
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.kernel_rules-setup"
REQUIREMENTS="$ROOT/third_party/python/requirements.txt"
SANDBOX_REQUIREMENTS="$ROOT/third_party/python/sandbox-requirements.txt"
SANDBOX_SITE="$ROOT/third_party/python/sandbox/site"
PACKAGES="$ROOT/third_party/system-packages.txt"
LOCK="$ROOT/third_party/linux/linux-source.lock"

say() { printf 'kernel_rules setup: %s\n' "$*" >&2; }
die() { printf 'kernel_rules setup: error: %s\n' "$*" >&2; exit 1; }
lock_value() { sed -n "s/^$1=//p" "$LOCK"; }

TARBALL="$ROOT/third_party/linux/$(basename "$(lock_value path_in_package)")"

pins_digest() {
  cat "$REQUIREMENTS" "$SANDBOX_REQUIREMENTS" "$PACKAGES" "$LOCK" | sha256sum | cut -d' ' -f1
}

tarball_id() {  # cheap identity of the verified tarball: size and mtime, not a re-hash
  stat -c '%s %Y' "$TARBALL" 2>/dev/null || echo missing
}

DEBIAN_CLOUD=0
[[ "${1:-}" == "--debian-cloud" ]] && DEBIAN_CLOUD=1

if [[ "${1:-}" == "--check" ]]; then
  [[ -f "$STAMP" && -x "$VENV/bin/pants" && -d "$SANDBOX_SITE/pysat" ]] || exit 1
  [[ "$(cat "$STAMP")" == "$(pins_digest) $(tarball_id)" ]] || exit 1
  exit 0
fi

# --- 1. Python 3.9 ------------------------------------------------------------------------------
find_python39() {
  local candidates=()
  [[ -n "${KERNEL_RULES_PYTHON:-}" ]] && candidates+=("$KERNEL_RULES_PYTHON")
  if command -v pyenv >/dev/null 2>&1; then
    local root; root="$(pyenv root)"
    candidates+=($(ls -d "$root"/versions/3.9.*/bin/python3.9 2>/dev/null | sort -V -r))
  fi
  candidates+=(python3.9 /usr/bin/python3.9 /usr/local/bin/python3.9)
  local c
  for c in "${candidates[@]}"; do
    if "$c" -c 'import sys, venv; assert sys.version_info[:2] == (3, 9)' >/dev/null 2>&1; then
      command -v "$c" || echo "$c"
      return 0
    fi
  done
  return 1
}

if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 9)' 2>/dev/null; then
  PY39="$(find_python39)" || die "Python 3.9 is required (Pants 2.17.1 ships only cp39 wheels) and none was found.
  Looked at \$KERNEL_RULES_PYTHON, pyenv's versions/3.9.*, and python3.9 on PATH.
  Install one (e.g. 'pyenv install 3.9.18') or set KERNEL_RULES_PYTHON=/path/to/python3.9."
  say "creating $VENV with $PY39"
  rm -rf "$VENV"
  "$PY39" -m venv "$VENV"
fi

# --- 2. Debian packages -------------------------------------------------------------------------
mapfile -t wanted < <(grep -v '^\s*#' "$PACKAGES" | sed '/^\s*$/d')
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
want_version="$(lock_value debian_version)"
src_pkg="$(lock_value debian_package)"
have_version="$(dpkg-query -W -f='${Version}' "$src_pkg" 2>/dev/null || true)"
if [[ -n "$have_version" && "$have_version" != "$want_version" && ! -f "$TARBALL" ]]; then
  missing+=("$src_pkg=$want_version")
fi
if ((${#missing[@]})); then
  cmd="apt-get install -y --no-install-recommends ${missing[*]}"
  if [[ "$(id -u)" == 0 ]]; then
    say "installing Debian packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $cmd -qq >/dev/null \
      || die "'$cmd' failed (if $src_pkg=$want_version is no longer in the archive, see docs/sources.md to move the pin)"
  else
    die "missing Debian packages. Run as root:
  sudo apt-get update && sudo $cmd
then run ./pants again."
  fi
fi

# --- 3. Python tools ----------------------------------------------------------------------------
if [[ ! -f "$STAMP" || "$(cut -d' ' -f1 "$STAMP")" != "$(pins_digest)" ]]; then
  say "installing Python tools into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
fi

# --- 4. Compiled packages for sandboxed processes (host python3) -------------------------------
if [[ ! -f "$STAMP" || "$(cut -d' ' -f1 "$STAMP")" != "$(pins_digest)" || ! -d "$SANDBOX_SITE/pysat" ]]; then
  host_py="$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" \
    || die "/usr/bin/python3 is missing (apt-get install python3)"
  [[ "$host_py" == "3.11" ]] || die "the host's /usr/bin/python3 is $host_py; the pins of
  third_party/python/sandbox-requirements.txt are CPython 3.11 wheels (Debian 12). Re-pin them
  for $host_py (pip download --only-binary=:all: --python-version $host_py ...) and update the hashes."
  say "installing CPython $host_py wheels for sandboxed processes into third_party/python/sandbox/"
  rm -rf "$SANDBOX_SITE"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes \
    --only-binary=:all: --python-version "$host_py" --implementation cp \
    --platform manylinux_2_28_x86_64 --target "$SANDBOX_SITE" -r "$SANDBOX_REQUIREMENTS"
fi

# --- 5. The pinned Linux source tarball ---------------------------------------------------------
want_sha="$(lock_value sha256)"
if [[ ! -f "$STAMP" || "$(cut -d' ' -f2- "$STAMP")" != "$(tarball_id)" ]]; then
  if [[ ! -f "$TARBALL" ]]; then
    from="$(lock_value path_in_package)"
    [[ -f "$from" ]] || die "$from not found although $src_pkg is installed"
    say "copying $from into third_party/linux/"
    cp --reflink=auto "$from" "$TARBALL.partial"
    mv "$TARBALL.partial" "$TARBALL"
  fi
  got_sha="$(sha256sum "$TARBALL" | cut -d' ' -f1)"
  if [[ "$got_sha" != "$want_sha" ]]; then
    die "sha256 mismatch for $TARBALL
  pinned (third_party/linux/linux-source.lock): $want_sha
  actual:                                       $got_sha
  Installed $src_pkg: ${have_version:-none}; pinned: $want_version.
  Delete the file to fetch the pinned one again, or move the pin as docs/sources.md describes."
  fi
fi

echo "$(pins_digest) $(tarball_id)" > "$STAMP"

# --- 6./7. examples/debian-cloud (only with --debian-cloud) -------------------------------------
((DEBIAN_CLOUD)) || exit 0
[[ "$(id -u)" == 0 ]] || die "--debian-cloud fetches and installs Debian packages: run it as root"
KLOCK="$ROOT/third_party/debian/cloud-kernel.lock"
DEBS="$ROOT/third_party/debian/debs"
klock() { sed -n "s/^$1=//p" "$KLOCK"; }
kversion="$(klock version)"
[[ "$kversion" == "$want_version" ]] || die "third_party/debian/cloud-kernel.lock pins Debian's
  kernel $kversion, but the source is $src_pkg $want_version (third_party/linux/linux-source.lock):
  traces would not map to the source tailored kernels are built from. Pin matching versions."
mkdir -p "$DEBS"
for kind in image debug; do
  pkg="$(klock ${kind}_package)"
  file="$DEBS/${pkg}_${kversion}_amd64.deb"
  sha="$(klock ${kind}_sha256)"
  if [[ ! -f "$file" ]] || [[ "$(sha256sum "$file" | cut -d' ' -f1)" != "$sha" ]]; then
    say "fetching $pkg $kversion"
    rm -f "$file"
    tmp="$(mktemp -d)"
    (cd "$tmp" && apt-get download -q "$pkg=$kversion" >/dev/null 2>&1) \
      || { DEBIAN_FRONTEND=noninteractive apt-get update -qq;
           (cd "$tmp" && apt-get download -q "$pkg=$kversion" >/dev/null 2>&1); } \
      || die "apt-get download $pkg=$kversion failed (not in the archive any more? move the pins
  as docs/debian-cloud.md describes)"
    mv "$tmp"/*.deb "$file.partial" && rm -rf "$tmp"
    got="$(sha256sum "$file.partial" | cut -d' ' -f1)"
    [[ "$got" == "$sha" ]] || die "sha256 mismatch for $pkg $kversion
  pinned (third_party/debian/cloud-kernel.lock): $sha
  actual:                                        $got"
    mv "$file.partial" "$file"
  fi
done
mapfile -t apps < <(grep -v '^\s*#' "$ROOT/third_party/debian/example-packages.txt" | sed '/^\s*$/d')
missing=()
for pkg in "${apps[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  say "installing ${missing[*]} (their services are not started)"
  # A policy-rc.d that answers 101 keeps Debian's maintainer scripts from starting services.
  policy=/usr/sbin/policy-rc.d
  saved=""
  [[ -e "$policy" ]] && { saved="$(mktemp)"; cp -p "$policy" "$saved"; }
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy"
  status=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >/dev/null || status=$?
  if [[ -n "$saved" ]]; then mv "$saved" "$policy"; else rm -f "$policy"; fi
  ((status == 0)) || die "apt-get install ${missing[*]} failed"
fi
say "examples/debian-cloud is set up"
