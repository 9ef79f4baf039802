#!/usr/bin/env bash
# Installs BuildGrid (a REAPI server, used by the remote-cache tests and docs/remote-cache.md)
# into .venv-buildgrid, idempotently. BuildGrid 0.9.x needs Python >= 3.13 (pyenv's, or
# $KERNEL_RULES_PYTHON313). Prints the path of `bgd`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv-buildgrid"
VERSION="0.9.1"
if [[ -x "$VENV/bin/bgd" ]] && [[ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("buildgrid"))' 2>/dev/null)" == "$VERSION" ]]; then
  echo "$VENV/bin/bgd"; exit 0
fi
py="${KERNEL_RULES_PYTHON313:-}"
if [[ -z "$py" ]] && command -v pyenv >/dev/null 2>&1; then
  py="$(ls -d "$(pyenv root)"/versions/3.1[3-9]*/bin/python3 2>/dev/null | sort -V | tail -1 || true)"
fi
[[ -n "$py" ]] || py="$(command -v python3.13 || true)"
[[ -n "$py" && -x "$py" ]] || { echo "BuildGrid $VERSION needs Python >= 3.13: install one (pyenv install 3.13) or set KERNEL_RULES_PYTHON313" >&2; exit 1; }
rm -rf "$VENV"
"$py" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "buildgrid==$VERSION" >&2
echo "$VENV/bin/bgd"
