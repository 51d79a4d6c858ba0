#!/bin/bash
# Set up (Debian packages, venv) and run the whole test suite, as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash contrib/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider tests "$@"
