#!/usr/bin/env bash
# Sets up everything kernel_rules needs on a fresh Debian 12 machine, idempotently, one line a step:
#   1. a Python 3.9 virtualenv (.venv) holding exactly third_party/python/requirements.lock
#   2. the Debian packages: linux-source-6.1 at exactly the version of
#      third_party/linux/linux-source.lock (downgrading or upgrading whatever is installed), the
#      others of third_party/system-packages.lock at their locked versions when missing (a warning
#      when an installed version differs from the lock)
#   3. CPython 3.11 wheels for sandboxed processes (third_party/python/sandbox-requirements.txt)
#   4. the Linux source tarball, copied from the pinned package into third_party/linux/ and
#      verified against its sha256
# Commands' own output goes to .venv/setup.log; it is shown when a step fails.
#
#   setup.sh                  the steps above
#   setup.sh --check          exit 0 at once when a previous setup of the same pins is complete
#   setup.sh --debian-cloud   also sets up examples/debian-cloud (docs/debian-cloud.md):
#                             5. Debian's cloud kernel packages of third_party/debian/cloud-kernel.lock,
#                                fetched into third_party/debian/debs/ and verified against their sha256
#                             6. the programs of third_party/debian/example-packages.lock, installed
#                                without starting or enabling their services on this machine
#   setup.sh --move-pins [VERSION]
#                             moves every Debian pin (source tarball, cloud kernel packages, their
#                             names and sha256s, in the locks and BUILD files) to Debian's VERSION
#                             of linux-source-6.1, default the newest (docs/sources.md)
#   setup.sh --lock-system    records the installed versions in the system and example locks
#   setup.sh --lock-python    re-resolves third_party/python/requirements.txt into requirements.lock
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.kernel_rules-setup"
LOG="$VENV/setup.log"
PY_REQUIREMENTS="$ROOT/third_party/python/requirements.txt"
PY_LOCK="$ROOT/third_party/python/requirements.lock"
SANDBOX_REQUIREMENTS="$ROOT/third_party/python/sandbox-requirements.txt"
SANDBOX_SITE="$ROOT/third_party/python/sandbox/site"
SYSTEM_LOCK="$ROOT/third_party/system-packages.lock"
EXAMPLE_LOCK="$ROOT/third_party/debian/example-packages.lock"
LOCK="$ROOT/third_party/linux/linux-source.lock"
KLOCK="$ROOT/third_party/debian/cloud-kernel.lock"
PINS=(/usr/bin/python3 "$ROOT/third_party/pins.py")
START=$SECONDS

say() { printf 'kernel_rules setup: %s\n' "$*" >&2; }
warn() { printf 'kernel_rules setup: warning: %s\n' "$*" >&2; }
die() { printf 'kernel_rules setup: error: %s\n' "$*" >&2; exit 1; }
lock_value() { sed -n "s/^$2=//p" "$1"; }
lock_entries() { grep -v '^\s*#' "$1" | sed '/^\s*$/d'; }   # package=version lines
is_root() { [[ "$(id -u)" == 0 ]]; }

# Runs a command with its output in the log; on failure shows the log's tail and stops.
logged() {
  local what="$1"; shift
  mkdir -p "$(dirname "$LOG")"
  printf '\n$ %s\n' "$*" >>"$LOG"
  if ! "$@" >>"$LOG" 2>&1; then
    tail -n 25 "$LOG" | sed 's/^/  | /' >&2
    die "$what failed: $* (the whole output is in ${LOG#$ROOT/})"
  fi
}

src_pkg="$(lock_value "$LOCK" debian_package)"
want_version="$(lock_value "$LOCK" debian_version)"
want_sha="$(lock_value "$LOCK" sha256)"
TARBALL="$ROOT/third_party/linux/$(basename "$(lock_value "$LOCK" path_in_package)")"

installed_version() { { dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null || true; } | sed -n 's/^install ok installed //p'; }

pins_digest() {
  cat "$PY_LOCK" "$SANDBOX_REQUIREMENTS" "$SYSTEM_LOCK" "$LOCK" | sha256sum | cut -d' ' -f1
}

installed_digest() {  # the installed versions of every locked package, as one digest
  local names; names=("$src_pkg" $(lock_entries "$SYSTEM_LOCK" | cut -d= -f1))
  { dpkg-query -W -f='${Package}=${Version} ${Status}\n' "${names[@]}" 2>/dev/null || true; } | sha256sum | cut -d' ' -f1
}

tarball_id() {  # cheap identity of the verified tarball: size and mtime, not a re-hash
  stat -c '%s %Y' "$TARBALL" 2>/dev/null || echo missing
}

stamp_value() { echo "$(pins_digest) $(installed_digest) $(tarball_id)"; }

move_pins_hint() {
  echo "Move every related pin to a version the archive has with:
  third_party/setup.sh --move-pins            (the newest; or --move-pins VERSION)
  (docs/sources.md says what it changes and what to re-check)"
}

# Versions of the named packages the archive has, as `package=version` lines.
archive_versions() { apt-cache madison "$@" 2>/dev/null | awk -F' *[|] *' '{gsub(/^ +/, "", $1); print $1 "=" $2}'; }

# Installs the locked packages of lock file $1 that are missing (at their locked version when the
# archive still has it), plus the exact `package=version` arguments after it; warns about installed
# versions that differ from the lock. Sets INSTALLED to what it installed.
install_locked() {
  local lock="$1"; shift
  local exact=("$@") missing=() entry name version have
  while IFS= read -r entry; do
    name="${entry%%=*}"
    [[ -n "$(installed_version "$name")" ]] || missing+=("$entry")
  done < <(lock_entries "$lock")
  INSTALLED=()
  ((${#missing[@]} + ${#exact[@]})) || return 0
  local wanted=("${missing[@]}" "${exact[@]}")
  local cmd="apt-get install -y --allow-downgrades --no-install-recommends ${wanted[*]}"
  is_root || die "Debian packages are missing or not at their pinned version. Run as root:
  sudo apt-get update && sudo $cmd
then run ./pants again."
  logged "apt-get update" env DEBIAN_FRONTEND=noninteractive apt-get update
  local available; available="$(archive_versions "${wanted[@]%%=*}")"
  for entry in "${exact[@]}"; do
    grep -qxF "$entry" <<<"$available" || die "${entry%%=*} ${entry#*=} is pinned, but Debian's archive no longer has it
  (it has: $(grep "^${entry%%=*}=" <<<"$available" | cut -d= -f2 | tr '\n' ' ')).
$(move_pins_hint)"
  done
  local args=("${exact[@]}")
  for entry in "${missing[@]}"; do
    if grep -qxF "$entry" <<<"$available"; then args+=("$entry"); else
      warn "${entry%%=*} ${entry#*=} (the locked version) is not in the archive any more; installing its current version"
      args+=("${entry%%=*}")
    fi
  done
  logged "installing Debian packages" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --allow-downgrades --no-install-recommends "${args[@]}"
  INSTALLED=("${args[@]}")
}

warn_unlocked_versions() {  # one warning per installed package whose version is not the locked one
  local lock="$1" entry have
  while IFS= read -r entry; do
    have="$(installed_version "${entry%%=*}")"
    [[ -z "$have" || "$have" == "${entry#*=}" ]] && continue
    warn "${entry%%=*} is $have here, verified with ${entry#*=} (${lock#$ROOT/}): its fingerprint is in the cache keys, so results differ from machines on the locked version; once checked, record it with third_party/setup.sh --lock-system"
  done < <(lock_entries "$lock")
}

relock() {  # rewrites lock file $1 with the installed version of each of its packages
  local lock="$1" line name have tmp; tmp="$(mktemp)"
  while IFS= read -r line; do
    if [[ "$line" =~ ^[[:space:]]*(#|$) ]]; then echo "$line"; continue; fi
    name="${line%%=*}"; have="$(installed_version "$name")"
    [[ -n "$have" ]] || { say "${lock#$ROOT/}: $name is not installed; kept at ${line#*=}"; echo "$line"; continue; }
    [[ "$have" == "${line#*=}" ]] || say "${lock#$ROOT/}: $name ${line#*=} -> $have"
    echo "$name=$have"
  done <"$lock" >"$tmp"
  mv "$tmp" "$lock"
}

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
  die "Python 3.9 is required (Pants 2.17.1 ships only cp39 wheels) and none was found.
  Looked at \$KERNEL_RULES_PYTHON, pyenv's versions/3.9.*, and python3.9 on PATH.
  Install one (e.g. 'pyenv install 3.9.18') or set KERNEL_RULES_PYTHON=/path/to/python3.9."
}

# The environment's pip configuration (extra indexes, find-links) is kept: it may be how this
# machine reaches PyPI. Its warnings go to the log with the rest of pip's output.
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_NO_WARN_SCRIPT_LOCATION=1

MODE="${1:-}"
TOTAL=4; [[ "$MODE" == "--debian-cloud" ]] && TOTAL=6
step() { local n="$1"; shift; say "[$n/$TOTAL] $*"; }
case "$MODE" in
  --check)
    [[ -f "$STAMP" && -x "$VENV/bin/pants" && -d "$SANDBOX_SITE/pysat" ]] || exit 1
    [[ "$(cat "$STAMP")" == "$(stamp_value)" ]] || exit 1
    exit 0 ;;
  --move-pins)
    is_root || die "--move-pins asks apt for the archive's current packages: run it as root"
    [[ $# -le 2 ]] || die "usage: third_party/setup.sh --move-pins [VERSION]"
    logged "apt-get update" env DEBIAN_FRONTEND=noninteractive apt-get update
    exec "${PINS[@]}" move ${2:+"$2"} ;;
  --lock-system)
    relock "$SYSTEM_LOCK"; relock "$EXAMPLE_LOCK"; say "locks updated"; exit 0 ;;
  --lock-python)
    tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
    logged "creating a scratch venv" "$(find_python39)" -m venv "$tmp/venv"
    logged "resolving $PY_REQUIREMENTS" "$tmp/venv/bin/pip" install --dry-run --ignore-installed \
      --report "$tmp/report.json" -r "$PY_REQUIREMENTS"
    exec "${PINS[@]}" lock-python "$tmp/report.json" ;;
  ""|--debian-cloud) ;;
  *) die "unknown option '$MODE' (see the top of third_party/setup.sh)" ;;
esac

# --- 1. Python 3.9 virtualenv, exactly the lock --------------------------------------------------
py_lock_digest="$(sha256sum "$PY_LOCK" | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 9)' 2>/dev/null \
   || [[ "$(cat "$VENV/.kernel_rules-python" 2>/dev/null)" != "$py_lock_digest" ]]; then
  PY39="$(find_python39)"
  rm -rf "$VENV"
  logged "creating $VENV" "$PY39" -m venv "$VENV"
  logged "installing Python tools" "$VENV/bin/pip" install --require-hashes --no-deps \
    --only-binary=:all: -r "$PY_LOCK"
  echo "$py_lock_digest" >"$VENV/.kernel_rules-python"
  step 1 "Python tools: .venv created with $PY39 ($(grep -c '^[^#]' "$PY_LOCK") pinned packages, Pants 2.17.1)"
else
  step 1 "Python tools: .venv is up to date"
fi

# --- 2. Debian packages ---------------------------------------------------------------------------
exact=()
have_version="$(installed_version "$src_pkg")"
if [[ "$have_version" != "$want_version" ]]; then
  if ! is_root && [[ -f "$TARBALL" ]] && [[ "$(sha256sum "$TARBALL" | cut -d' ' -f1)" == "$want_sha" ]]; then
    warn "$src_pkg is ${have_version:-not installed} here, pinned $want_version; the copied tarball is the pinned one, so builds are unaffected"
    have_version="$want_version"
  else
    exact+=("$src_pkg=$want_version")
  fi
fi
install_locked "$SYSTEM_LOCK" "${exact[@]}"
((${#exact[@]})) && have_version="$(installed_version "$src_pkg")"
[[ "$have_version" == "$want_version" ]] || die "$src_pkg is ${have_version:-not installed} after the
  install, not the pinned $want_version (third_party/linux/linux-source.lock)"
if ((${#INSTALLED[@]})); then
  step 2 "Debian packages: installed ${INSTALLED[*]}; $src_pkg is $have_version (pinned)"
else
  step 2 "Debian packages: all present; $src_pkg is $have_version (pinned)"
fi
warn_unlocked_versions "$SYSTEM_LOCK"

# --- 3. Compiled packages for sandboxed processes (host python3) ---------------------------------
sandbox_digest="$(sha256sum "$SANDBOX_REQUIREMENTS" | cut -d' ' -f1)"
if [[ ! -d "$SANDBOX_SITE/pysat" || "$(cat "$SANDBOX_SITE/.kernel_rules" 2>/dev/null)" != "$sandbox_digest" ]]; then
  host_py="$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" \
    || die "/usr/bin/python3 is missing (apt-get install python3)"
  [[ "$host_py" == "3.11" ]] || die "the host's /usr/bin/python3 is $host_py; the pins of
  third_party/python/sandbox-requirements.txt are CPython 3.11 wheels (Debian 12). Re-pin them
  for $host_py (pip download --only-binary=:all: --python-version $host_py ...) and update the hashes."
  rm -rf "$SANDBOX_SITE"
  logged "installing the sandbox wheels" "$VENV/bin/pip" install --no-deps --require-hashes \
    --only-binary=:all: --python-version "$host_py" --implementation cp \
    --platform manylinux_2_28_x86_64 --target "$SANDBOX_SITE" -r "$SANDBOX_REQUIREMENTS"
  echo "$sandbox_digest" >"$SANDBOX_SITE/.kernel_rules"
  step 3 "sandbox wheels: installed for CPython $host_py into third_party/python/sandbox/"
else
  step 3 "sandbox wheels: up to date"
fi

# --- 4. The pinned Linux source tarball ----------------------------------------------------------
stamped_tarball="$(cut -d' ' -f3- "$STAMP" 2>/dev/null || true)"
if [[ -f "$TARBALL" && "$stamped_tarball" == "$(tarball_id)" && "$(cut -d' ' -f1 "$STAMP")" == "$(pins_digest)" ]]; then
  step 4 "Linux source: ${TARBALL#$ROOT/} verified earlier (Debian $want_version)"
else
  if [[ -f "$TARBALL" ]] && [[ "$(sha256sum "$TARBALL" | cut -d' ' -f1)" != "$want_sha" ]]; then
    rm -f "$TARBALL"   # another pin's tarball: it is a copy of a package, replace it
  fi
  from="$(lock_value "$LOCK" path_in_package)"
  if [[ ! -f "$TARBALL" ]]; then
    [[ -f "$from" ]] || die "$from not found although $src_pkg $have_version is installed"
    cp --reflink=auto "$from" "$TARBALL.partial"
    got_sha="$(sha256sum "$TARBALL.partial" | cut -d' ' -f1)"
    if [[ "$got_sha" != "$want_sha" ]]; then
      rm -f "$TARBALL.partial"
      die "the tarball of the installed $src_pkg $have_version has sha256 $got_sha,
  but third_party/linux/linux-source.lock pins $want_sha for that version: the archive's package
  is not the pinned one (rebuilt under the same version?). Nothing was changed.
$(move_pins_hint)"
    fi
    mv "$TARBALL.partial" "$TARBALL"
  fi
  step 4 "Linux source: ${TARBALL#$ROOT/} verified (Linux $(sed -n 's/^ *version="\(.*\)",$/\1/p' "$ROOT/third_party/linux/BUILD"), Debian $want_version, sha256 ${want_sha:0:12}...)"
fi

stamp_value >"$STAMP"

if [[ "$MODE" != "--debian-cloud" ]]; then
  say "ready in $((SECONDS - START)) s. The first './pants package test examples/tailored:ipc-unminimised' builds the trace kernel and a tailored kernel: about 10 minutes on 2 cores; examples/tailored:ipc is that kernel minimised (a few dozen builds and boots the first time); later runs reuse the caches."
  exit 0
fi

# --- 5. Debian's cloud kernel packages (--debian-cloud) ------------------------------------------
is_root || die "--debian-cloud fetches and installs Debian packages: run it as root"
DEBS="$ROOT/third_party/debian/debs"
kversion="$(lock_value "$KLOCK" version)"
"${PINS[@]}" check || die "the Debian pins disagree (above): move them together with
  third_party/setup.sh --move-pins $want_version"
mkdir -p "$DEBS"
fetched=()
for kind in image debug; do
  pkg="$(lock_value "$KLOCK" ${kind}_package)"
  file="$DEBS/${pkg}_${kversion}_amd64.deb"
  sha="$(lock_value "$KLOCK" ${kind}_sha256)"
  [[ -f "$file" ]] && [[ "$(sha256sum "$file" | cut -d' ' -f1)" == "$sha" ]] && continue
  rm -f "$file"
  tmp="$(mktemp -d)"
  if ! (cd "$tmp" && apt-get download -q "$pkg=$kversion" >>"$LOG" 2>&1); then
    logged "apt-get update" env DEBIAN_FRONTEND=noninteractive apt-get update
    grep -qxF "$pkg=$kversion" <<<"$(archive_versions "$pkg")" || die "$pkg $kversion is pinned, but Debian's archive no longer has it.
$(move_pins_hint)"
    (cd "$tmp" && logged "downloading $pkg $kversion" apt-get download -q "$pkg=$kversion")
  fi
  mv "$tmp"/*.deb "$file.partial" && rm -rf "$tmp"
  got="$(sha256sum "$file.partial" | cut -d' ' -f1)"
  [[ "$got" == "$sha" ]] || { rm -f "$file.partial"; die "sha256 mismatch for $pkg $kversion
  pinned (third_party/debian/cloud-kernel.lock): $sha
  actual:                                        $got"; }
  mv "$file.partial" "$file"
  fetched+=("$pkg")
done
step 5 "Debian cloud kernel $kversion: ${fetched[*]:-both packages} $( ((${#fetched[@]})) && echo fetched and) verified"

# --- 6. The example servers, never started or enabled on this machine ----------------------------
policy=/usr/sbin/policy-rc.d
saved=""
restore_policy() { if [[ -n "$saved" ]]; then mv -f "$saved" "$policy"; else rm -f "$policy"; fi; }
[[ -e "$policy" ]] && { saved="$(mktemp)"; cp -p "$policy" "$saved"; }
trap restore_policy EXIT
# A policy-rc.d that answers 101 keeps Debian's maintainer scripts from starting services.
printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
install_locked "$EXAMPLE_LOCK"
restore_policy; trap - EXIT
# Their maintainer scripts enable the services for the next boot: undo that for what this run installed.
for entry in "${INSTALLED[@]}"; do
  case "${entry%%=*}" in
    nginx-light) unit=nginx.service ;; redis-server) unit=redis-server.service ;;
    memcached) unit=memcached.service ;; *) continue ;;
  esac
  command -v systemctl >/dev/null && systemctl disable "$unit" >>"$LOG" 2>&1 || true
done
step 6 "example servers: ${INSTALLED[*]:-all present} (services neither started nor enabled)"
warn_unlocked_versions "$EXAMPLE_LOCK"
say "examples/debian-cloud is set up in $((SECONDS - START)) s"
