#!/usr/bin/env bash
# Run a command inside the trixie root: tools/compat/run-in-root.sh with COMPAT_SUITE=trixie (see there and README.md).
# One word, so that ORTHANC_COMMAND="tools/compat/run-in-trixie.sh /usr/sbin/Orthanc" starts trixie's Orthanc.
COMPAT_SUITE=trixie exec "$(dirname "${BASH_SOURCE[0]}")/run-in-root.sh" "$@"
