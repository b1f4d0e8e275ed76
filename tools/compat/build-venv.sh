#!/usr/bin/env bash
# Build (or reuse) the plugin's virtual environment for a compat root (COMPAT_SUITE: trixie when unset, or forky):
# made by the root's python3 (3.13, 3.14), installed from pyproject.toml ('.[dev]', editable), kept in $COMPAT_VENV
# (.compat/venv-<suite>) and seen as <checkout>/.venv inside the root (tools/compat/run-in-root.sh), which is where
# plugin/entry.py and WorkerPython look for it.
#
#   tools/compat/build-venv.sh                     make it unless it is up to date with pyproject.toml and the root
#   COMPAT_SUITE=forky tools/compat/build-venv.sh  the forky root's
#   tools/compat/build-venv.sh --force             rebuild it
set -euo pipefail
# shellcheck source=tools/compat/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

compat_parse_force "$@"

[[ -f "$COMPAT_ROOT/.compat-root-key" ]] || compat_die "no root at $COMPAT_ROOT: run 'make compat-root-$COMPAT_SUITE' first"
key="$(cat "$COMPAT_ROOT/.compat-root-key" "$COMPAT_CHECKOUT/pyproject.toml" | sha256sum | cut -c1-16)"
stamp="$COMPAT_VENV/.compat-venv-key"
if ((!force)) && [[ -f "$stamp" && "$(cat "$stamp")" == "$key" ]]; then
    compat_log "$COMPAT_VENV is up to date ($key)"
    exit 0
fi

started=$SECONDS
rm -rf "$COMPAT_VENV"
mkdir -p "$COMPAT_VENV"
# Inside the root the empty $COMPAT_VENV is mounted at <checkout>/.venv, so the venv records that path (its
# scripts' #! lines, pyvenv.cfg) and the editable install records the checkout's own path: both valid in the root.
# The host's pip settings (certificate bundle, time-out) come along in the environment; its local wheel folder does
# not exist in the root and is left out.
# shellcheck disable=SC2016 # expanded by the shell inside the root
env -u PIP_FIND_LINKS -u PIP_CONSTRAINT "$COMPAT_CHECKOUT/tools/compat/run-in-root.sh" /bin/sh -ec '
    cd "$1"
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e ".[dev]"
    .venv/bin/python -c "import sys, pydicom; print(\"compat: venv\", sys.version.split()[0], \"pydicom\", pydicom.__version__)"
' compat-venv "$COMPAT_CHECKOUT"
printf '%s\n' "$key" >"$stamp"
compat_log "venv ready in $((SECONDS - started)) s: $(du -sh "$COMPAT_VENV" | cut -f1) at $COMPAT_VENV"
