#!/usr/bin/env bash
# Sets up everything the test suite needs on a fresh machine, then runs lint, types and tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# System services the integration tests start themselves (on free ports, never the machine's own).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# Debian's `prometheus` package ships both `prometheus` and `promtool` (rules tests, integration).
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'

.venv/bin/ruff check recserver tests load
.venv/bin/mypy recserver
.venv/bin/pytest -q "$@"
