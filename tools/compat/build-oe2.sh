#!/usr/bin/env bash
# Build (or reuse) Orthanc Explorer 2 (OE2) 1.14.1, the web UI of today's orthancteam/orthanc images, for the browser
# test that clicks our buttons in it (tests/browser/test_oe2.py) on forky's Orthanc 1.13.0:
#
#   tools/compat/build-oe2.sh            .compat/oe2/libOrthancExplorer2.so, unless it is already up to date
#   tools/compat/build-oe2.sh --force    rebuild it from the source tarball
#
# From ../shared/third_party/orthanc-explorer-2-1.14.1.tar.gz (OE2_SOURCE overrides; SOURCE.md there says what it
# is; its sha256 is checked), never copied into the project. The build runs in a forky root of its own
# (.compat/oe2-build: build-root.sh with the compilers, orthanc-dev, liborthancframework-dev, Node.js and npm as
# its COMPAT_PACKAGES): the WebApplication with npm (its lock file pins uppie 4.1.4, which the registry does not
# serve, so `npm install` with uppie ^4.1.0 instead of `npm ci`) and Vite, then the C++ plugin with CMake against
# the system's Orthanc SDK and framework, embedding the web application. The plugin runs in the forky root, which
# carries liborthancframework1.13.0 for it.
#
# Idempotent, and cached per machine like the roots: the finished plugin is kept as
# $COMPAT_CACHE/oe2-1.14.1-<key>.tar.zst, the key being a hash of the source's sha256 and this script; a fresh
# clone on the same machine (CI's) unpacks it in a second. The build root is removed once the plugin is built.
# Needs root (debootstrap, chroot).
set -euo pipefail
export COMPAT_SUITE=forky
# shellcheck source=tools/compat/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

compat_parse_force "$@"
[[ "$(id -u)" == 0 ]] || compat_die "needs root (the build runs in a forky root)"

OE2_VERSION=1.14.1
OE2_SHA256=a18b31da30c8e4df616df69fbdbe6a74f1287cf80fcaf49928028a8decbaa89c
# The build root holds only what the build needs (COMPAT_PACKAGES replaces the test roots' list): CMake wants patch,
# unzip and GoogleTest even with downloads off; python3 embeds the web application's files into the plugin.
OE2_BUILD_PACKAGES="ca-certificates python3 orthanc-dev liborthancframework-dev cmake make g++ patch unzip libgtest-dev \
nodejs npm"
source_tarball="${OE2_SOURCE:-$(dirname "$COMPAT_CHECKOUT")/shared/third_party/orthanc-explorer-2-$OE2_VERSION.tar.gz}"
out="$COMPAT_CHECKOUT/.compat/oe2"
stamp="$out/.oe2-key"
key="$(printf '%s\n%s\n' "$OE2_SHA256" "$(cat "${BASH_SOURCE[0]}")" | sha256sum | cut -c1-16)"
tarball="$COMPAT_CACHE/oe2-$OE2_VERSION-$key.tar.zst"

if ((!force)) && [[ -f "$stamp" && "$(cat "$stamp")" == "$key" && -f "$out/libOrthancExplorer2.so" ]]; then
    compat_log "$out is up to date ($key)"
    exit 0
fi
started=$SECONDS
rm -rf "$out.partial"
mkdir -p "$out.partial"

if ((!force)) && [[ -f "$tarball" ]]; then
    compat_log "unpacking cached Orthanc Explorer 2 $tarball"
    tar --zstd -xf "$tarball" -C "$out.partial"
    touch "$tarball" # in use: kept by the pruning below
else
    [[ -f "$source_tarball" ]] || compat_die "no $source_tarball: set OE2_SOURCE to orthanc-explorer-2-$OE2_VERSION.tar.gz"
    printf '%s  %s\n' "$OE2_SHA256" "$source_tarball" | sha256sum --check --quiet ||
        compat_die "$source_tarball is not the OE2 $OE2_VERSION source (sha256 differs)"
    build_root="$COMPAT_CHECKOUT/.compat/oe2-build"
    # COMPAT_VENV: build-root.sh removes the venv of the root it replaces; this root has none (never forky's own).
    COMPAT_ROOT="$build_root" COMPAT_VENV="$build_root.no-venv" COMPAT_PACKAGES="$OE2_BUILD_PACKAGES" \
        "$COMPAT_CHECKOUT/tools/compat/build-root.sh"
    # Under /tmp, which run-in-root.sh mounts into the root; an empty folder stands for the venv it mounts.
    work="$(mktemp -d /tmp/orthanc-anonymizer-oe2.XXXXXX)"
    trap 'rm -rf --one-file-system "$work"' EXIT
    mkdir "$work/no-venv"
    tar -xzf "$source_tarball" -C "$work"
    compat_log "building Orthanc Explorer 2 $OE2_VERSION in $build_root"
    mkdir "$work/home"
    # shellcheck disable=SC2016 # the script below expands its own positional parameters
    COMPAT_ROOT="$build_root" COMPAT_PACKAGES="$OE2_BUILD_PACKAGES" COMPAT_VENV="$work/no-venv" HOME="$work/home" \
        NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt npm_config_update_notifier=false \
        npm_config_fund=false npm_config_audit=false \
        "$COMPAT_CHECKOUT/tools/compat/run-in-root.sh" /bin/bash -euo pipefail -c '
            source="$1" version="$2"
            cd "$source/WebApplication"
            npm install --no-save "uppie@^4.1.0"
            npm run build
            mkdir -p "$source/build"
            cd "$source/build"
            cmake .. -DCMAKE_BUILD_TYPE=Release -DALLOW_DOWNLOADS=OFF -DORTHANC_FRAMEWORK_SOURCE=system \
                -DUSE_SYSTEM_ORTHANC_SDK=ON -DWEBAPP_DIST_SOURCE=LOCAL -DPLUGIN_VERSION="$version"
            make -j"$(nproc)"
        ' oe2-build "$work/orthanc-explorer-2-$OE2_VERSION" "$OE2_VERSION"
    cp "$work/orthanc-explorer-2-$OE2_VERSION/build/libOrthancExplorer2.so" "$out.partial/"
    rm -rf --one-file-system "$build_root" "$build_root.partial"
    mkdir -p "$COMPAT_CACHE"
    find "$COMPAT_CACHE" -maxdepth 1 -name "oe2-*.tar.zst" -mtime "+${COMPAT_CACHE_DAYS:-14}" -delete
    compat_log "caching Orthanc Explorer 2 as $tarball"
    tar --zstd -cf "$tarball.tmp" -C "$out.partial" libOrthancExplorer2.so
    mv "$tarball.tmp" "$tarball"
fi

printf '%s\n' "$key" >"$out.partial/.oe2-key"
rm -rf "$out"
mv "$out.partial" "$out"
compat_log "Orthanc Explorer 2 $OE2_VERSION ready in $out ($((SECONDS - started)) s)"
