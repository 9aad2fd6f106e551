#!/usr/bin/env bash
# Resolve env/requirements.in in a throwaway venv and write env/lock-cpu.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
kind="${1:-cpu}"  # cpu: env/requirements.in -> env/lock-cpu.txt; gpu: requirements-gpu.in -> lock-gpu.txt
case "$kind" in
  cpu) req=env/requirements.in; lock=env/lock-cpu.txt ;;
  gpu) req=env/requirements-gpu.in; lock=env/lock-gpu.txt ;;
  *) echo "usage: env/make-lock.sh [cpu|gpu]" >&2; exit 2 ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$python" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --upgrade pip==25.3
# liger-kernel's metadata requires triton, which the CPU tests do not need.
grep -v -e '^liger-kernel' -e '^flash-attn' "$req" > "$tmp/req.in"
"$tmp/venv/bin/python" -m pip install --quiet -r "$tmp/req.in"
"$tmp/venv/bin/python" -m pip install --quiet --no-deps "$(grep '^liger-kernel' "$req" | cut -d' ' -f1)"
{
  sed -n '1,/^[^#]/p' "$lock" | grep '^#'
  "$tmp/venv/bin/python" -m pip freeze --all | sed -e 's/+cpu$//' -e 's/^liger_kernel @ .*/liger-kernel==0.8.5/' | sort -f
} > "$tmp/lock.txt"
mv "$tmp/lock.txt" "$lock"
echo "wrote $lock ($(grep -c '^[^#].*==' "$lock") pins)"
