#!/usr/bin/env bash
# Run a command inside a compat root (COMPAT_SUITE: trixie when unset, or forky), with the checkout at the same
# absolute path and the root's venv as its .venv. run-in-trixie.sh and run-in-forky.sh set the suite.
#
#   tools/compat/run-in-trixie.sh COMMAND [ARG]...
#   tools/compat/run-in-trixie.sh /usr/sbin/Orthanc /tmp/pytest-of-root/.../orthanc.json
#   tools/compat/run-in-trixie.sh .venv/bin/pytest -q tests/unit      # the unit tests on trixie's Python 3.13
#   tools/compat/run-in-forky.sh .venv/bin/pytest -q tests/unit       # on forky's Python 3.14
#
# How: a private mount namespace (unshare --mount), so that nothing mounted here is seen outside and every mount
# vanishes with the command, even when it is killed; inside it /proc, /sys, /dev (with /dev/shm), /tmp, the checkout
# and, if present, the `shared/` folder beside it are bind-mounted into the root at their own paths, and
# $COMPAT_VENV is mounted over <checkout>/.venv, and the host's CA bundle over the root's (pip reaches PyPI as the
# host does). Then chroot and exec: the PID the caller holds becomes COMMAND's,
# so SIGTERM reaches it directly and its exit status is returned. The working directory is kept when it exists in
# the root (under the checkout or /tmp), else it is /. The host network is shared: servers listen on host loopback.
#
# Environment: kept, except PATH (the root's standard one) and PYTHONHOME, PYTHONPATH, VIRTUAL_ENV (dropped).
set -euo pipefail
# shellcheck source=tools/compat/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

(($#)) || compat_die "usage: $0 COMMAND [ARG]..."
[[ "$(id -u)" == 0 ]] || compat_die "needs root (mount namespaces and chroot)"
[[ -f "$COMPAT_ROOT/.compat-root-key" ]] || compat_die "no root at $COMPAT_ROOT: run 'make compat-root-$COMPAT_SUITE' first"
if [[ "$(cat "$COMPAT_ROOT/.compat-root-key")" != "$(compat_root_key)" ]]; then
    compat_log "warning: $COMPAT_ROOT is older than tools/compat/build-root.sh: run 'make compat-root-$COMPAT_SUITE'"
fi

shared="$(dirname "$COMPAT_CHECKOUT")/shared"
[[ -d "$shared" ]] || shared=""
[[ -d "$COMPAT_VENV" ]] || compat_die "no venv at $COMPAT_VENV: run 'make compat-venv-$COMPAT_SUITE' first"
# The mount point of the venv: an empty .venv made here is what `make venv` would fill anyway (it is ignored by git).
[[ ! -L "$COMPAT_CHECKOUT/.venv" ]] || compat_die "$COMPAT_CHECKOUT/.venv is a symbolic link: make it a folder"
[[ -e "$COMPAT_CHECKOUT/.venv" ]] || mkdir "$COMPAT_CHECKOUT/.venv"
cp -f /etc/resolv.conf "$COMPAT_ROOT/etc/resolv.conf"
# A shared lock for as long as COMMAND runs (the descriptor is inherited through exec): build-root.sh waits
# for it before it replaces the root.
exec 9<"$COMPAT_ROOT.lock"
flock -s -n 9 || compat_die "$COMPAT_ROOT is being rebuilt; try again when build-root.sh has finished"

# shellcheck disable=SC2016 # the script below expands its own positional parameters
exec env -u PYTHONHOME -u PYTHONPATH -u VIRTUAL_ENV \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    unshare --mount --propagation private -- /bin/bash -euo pipefail -c '
        root="$1" checkout="$2" shared="$3" venv="$4" cwd="$5"
        shift 5
        bind() { mkdir -p "$root$2"; mount --rbind "$1" "$root$2"; }
        mount -t proc proc "$root/proc"
        bind /sys /sys
        bind /dev /dev
        bind /tmp /tmp
        bind "$checkout" "$checkout"
        if [[ -n "$shared" ]]; then bind "$shared" "$shared"; fi
        mount --bind "$venv" "$root$checkout/.venv"
        # The certificate bundle of the host: registries are reached through its network, trusted as it trusts them.
        if [[ -f /etc/ssl/certs/ca-certificates.crt && -f "$root/etc/ssl/certs/ca-certificates.crt" ]]; then
            mount --bind /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
        fi
        [[ -d "$root$cwd" ]] || cwd=/
        exec chroot "$root" /bin/sh -c "cd \"\$0\" && exec \"\$@\"" "$cwd" "$@"
    ' compat-run "$COMPAT_ROOT" "$COMPAT_CHECKOUT" "$shared" "$COMPAT_VENV" "$PWD" "$@"
