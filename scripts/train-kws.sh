#!/bin/sh
# Train the keyword model of tests/kws/ (run by hand, never by CI): installs espeak-ng if it is
# missing (Debian/Ubuntu, as root or with sudo), then runs scripts/train-kws.py, which makes or
# reuses the models venv (scripts/requirements-models.txt) and re-executes itself there.
# Arguments go to train-kws.py (--help lists them). About 50 minutes on two cores.
set -eu
if ! command -v espeak-ng >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get install -y espeak-ng
fi
exec python3 "$(dirname "$0")/train-kws.py" "$@"
