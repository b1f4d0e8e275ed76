#!/usr/bin/env bash
# Run a command inside the forky root: tools/compat/run-in-root.sh with COMPAT_SUITE=forky (see there and README.md).
# One word, so that ORTHANC_COMMAND="tools/compat/run-in-forky.sh /usr/sbin/Orthanc" starts forky's Orthanc.
COMPAT_SUITE=forky exec "$(dirname "${BASH_SOURCE[0]}")/run-in-root.sh" "$@"
