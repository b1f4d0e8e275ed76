#!/usr/bin/env bash
# Build (or reuse) a Debian root that the compat tests run a newer Orthanc in: trixie (Orthanc 1.12 + orthanc-python
# 5.0) or forky (Orthanc 1.13 + orthanc-python 7.1), as COMPAT_SUITE says (trixie when unset).
#
#   tools/compat/build-root.sh                     make .compat/trixie unless it is already up to date
#   COMPAT_SUITE=forky tools/compat/build-root.sh  make .compat/forky
#   tools/compat/build-root.sh --force             rebuild it from the mirror
#
# Idempotent: a root whose stamp matches the current key (suite, its settings, package list, this script) is kept;
# otherwise one cached on this machine under $COMPAT_CACHE is unpacked; otherwise debootstrap builds it from the
# Debian mirror that this host's apt uses (/etc/apt/sources.list*), and the result is cached. Cached roots of other
# keys (another branch's checkout on the same machine) are kept until unused for COMPAT_CACHE_DAYS (14) days.
# Needs root (debootstrap, chroot, mount).
set -euo pipefail
# shellcheck source=tools/compat/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

compat_parse_force "$@"

[[ "$(id -u)" == 0 ]] || compat_die "needs root (debootstrap and chroot)"

key="$(compat_root_key)"
stamp="$COMPAT_ROOT/.compat-root-key"
tarball="$COMPAT_CACHE/$COMPAT_SUITE-root-$key.tar.zst"
up_to_date() { ((!force)) && [[ -f "$stamp" && "$(cat "$stamp")" == "$key" ]]; }

if up_to_date; then
    compat_log "$COMPAT_ROOT is up to date ($key)"
    exit 0
fi
# One build at a time, and none while a command runs in the root (run-in-root.sh holds a shared lock).
mkdir -p "$(dirname "$COMPAT_ROOT")"
exec 9>"$COMPAT_ROOT.lock"
flock -w 600 9 || compat_die "$COMPAT_ROOT is in use (a command still runs in it) or being built"
if up_to_date; then
    compat_log "$COMPAT_ROOT was brought up to date meanwhile ($key)"
    exit 0
fi

install_host_tools() {
    local missing=() tool
    for tool in debootstrap zstd flock unshare; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    if ((${#missing[@]})); then
        compat_log "installing on the host: ${missing[*]}"
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

install_host_tools
partial="$COMPAT_ROOT.partial"
rm -rf --one-file-system "$partial"
started=$SECONDS

if ((!force)) && [[ -f "$tarball" ]]; then
    compat_log "unpacking cached root $tarball"
    mkdir -p "$partial"
    tar --zstd -xpf "$tarball" -C "$partial" --numeric-owner
    touch "$tarball" # in use: kept by the pruning below
else
    mirror="$(compat_mirror)"
    security="$(compat_security_mirror)"
    compat_log "debootstrap $COMPAT_SUITE from $mirror into $partial"
    # Debian's own archive keys (debian-archive-keyring on bookworm carries trixie's, which signs forky too).
    debootstrap --variant=minbase --components=main \
        --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
        "$COMPAT_SUITE" "$partial" "$mirror" "/usr/share/debootstrap/scripts/$(compat_suite_setting script)"

    {
        printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\n' "$mirror" "$(compat_suite_setting suites)"
        printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        if [[ -n "$security" ]]; then
            printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n' "$security" "$COMPAT_SUITE"
            printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        fi
    } >"$partial/etc/apt/sources.list.d/debian.sources"
    rm -f "$partial/etc/apt/sources.list"
    compat_suite_setting apt >"$partial/etc/apt/apt.conf.d/99compat"
    # No service starts inside the root: the tests start Orthanc themselves.
    printf '#!/bin/sh\nexit 101\n' >"$partial/usr/sbin/policy-rc.d"
    chmod 755 "$partial/usr/sbin/policy-rc.d"
    # Keep the root small: no documentation, manual pages or translations.
    cat >"$partial/etc/dpkg/dpkg.cfg.d/01-compat-nodoc" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/info/*
CFG

    # apt inside the root, in a private mount namespace so that /proc and /dev vanish with the process.
    cp /etc/resolv.conf "$partial/etc/resolv.conf"
    # shellcheck disable=SC2016 # the script below expands its own positional parameters
    unshare --mount --propagation private -- bash -euo pipefail -c '
        root="$1"; shift
        mount -t proc proc "$root/proc"
        mount --rbind /dev "$root/dev"
        chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
            sh -ec "apt-get update -q
                    apt-get install -y -q --no-install-recommends $*
                    apt-get clean
                    rm -rf /var/lib/apt/lists/*"
    ' compat-apt "$partial" "$(compat_packages)"
    printf '%s\n' "$key" >"$partial/.compat-root-key"

    mkdir -p "$COMPAT_CACHE"
    # Other keys' roots stay while some checkout on this machine still unpacks them (another branch's); the ones
    # nobody used for COMPAT_CACHE_DAYS days go.
    find "$COMPAT_CACHE" -maxdepth 1 -name "$COMPAT_SUITE-root-*.tar.zst" -mtime "+${COMPAT_CACHE_DAYS:-14}" -delete
    compat_log "caching the root as $tarball"
    tar --zstd -cpf "$tarball.tmp" -C "$partial" --numeric-owner .
    mv "$tarball.tmp" "$tarball"
fi

[[ "$(cat "$partial/.compat-root-key")" == "$key" ]] || compat_die "$partial carries another key"
# Mounts made by run-in-root.sh live in private namespaces and are not seen here; refuse anyway if something
# mounted under the root in this namespace (never delete through a bind mount), and stay on the root's file system.
if awk -v root="$COMPAT_ROOT/" 'index($5, root) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
    compat_die "something is mounted under $COMPAT_ROOT; stop what runs there first"
fi
# A venv made for an older root points at its python; drop it so that it is rebuilt.
rm -rf --one-file-system "$COMPAT_ROOT" "$COMPAT_VENV"
mv "$partial" "$COMPAT_ROOT"
compat_log "root ready in $((SECONDS - started)) s: $(du -sh --one-file-system "$COMPAT_ROOT" | cut -f1) at $COMPAT_ROOT"
# shellcheck disable=SC2016 # dpkg-query's own ${field} syntax
chroot "$COMPAT_ROOT" dpkg-query -W -f='compat:   ${Package} ${Version}\n' orthanc orthanc-python orthanc-postgresql python3 >&2 || true
