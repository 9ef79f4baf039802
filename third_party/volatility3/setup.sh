#!/usr/bin/env bash
# Installs Volatility 3 (third_party/volatility3/requirements.txt, pinned by sha256) into
# .venv-volatility3 with the system's python3, idempotently. Prints the path of `vol`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv-volatility3"
REQUIREMENTS="$ROOT/third_party/volatility3/requirements.txt"
STAMP="$VENV/.requirements.sha256"
want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [[ -x "$VENV/bin/vol" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  echo "$VENV/bin/vol"; exit 0
fi
py="$(command -v /usr/bin/python3 || command -v python3 || true)"
[[ -n "$py" ]] || { echo "Volatility 3 needs python3 (apt-get install python3 python3-venv)" >&2; exit 1; }
rm -rf "$VENV"
"$py" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes \
  -r "$REQUIREMENTS" >&2
echo "$want" > "$STAMP"
echo "$VENV/bin/vol"
