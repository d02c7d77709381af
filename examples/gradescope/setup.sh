#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (Ubuntu).
# It installs cnncheck from the wheel shipped in the autograder zip (see README.md here):
# the image then needs no network at grading time.
set -euo pipefail
SOURCE="${SOURCE_DIR:-/autograder/source}"

if ! command -v python3 >/dev/null || ! python3 -m pip --version >/dev/null 2>&1; then
  apt-get update -q
  apt-get install -y -q python3 python3-pip
fi
shopt -s nullglob
wheels=("$SOURCE"/cnncheck-*.whl)
if [ ${#wheels[@]} -gt 0 ]; then
  python3 -m pip install --break-system-packages "${wheels[0]}" 2>/dev/null \
    || python3 -m pip install "${wheels[0]}"
else  # a copy of the cnncheck repository in the zip, as the folder cnncheck/
  python3 -m pip install --break-system-packages "$SOURCE/cnncheck" 2>/dev/null \
    || python3 -m pip install "$SOURCE/cnncheck"
fi
cnncheck --version
