# Shared settings of the compat scripts (sourced, not run). See tools/compat/README.md.
# shellcheck shell=bash

COMPAT_CHECKOUT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
# Which Debian release the root is: trixie (Orthanc 1.12.7, orthanc-python 5.0, Python 3.13) or forky (Orthanc
# 1.13.0, orthanc-python 7.1, Python 3.14). COMPAT_SUITES lists every supported one, in the order make runs them.
COMPAT_SUITES="trixie forky"
COMPAT_SUITE="${COMPAT_SUITE:-trixie}"
case " $COMPAT_SUITES " in
    *" $COMPAT_SUITE "*) ;;
    *) printf 'compat: error: COMPAT_SUITE=%s is none of: %s\n' "$COMPAT_SUITE" "$COMPAT_SUITES" >&2; exit 1 ;;
esac
# The root: a Debian system made by debootstrap, ignored by git (/.compat/ in .gitignore).
COMPAT_ROOT="${COMPAT_ROOT:-$COMPAT_CHECKOUT/.compat/$COMPAT_SUITE}"
# The plugin's virtual environment made by the root's python3; seen as <checkout>/.venv inside the root.
COMPAT_VENV="${COMPAT_VENV:-$COMPAT_CHECKOUT/.compat/venv-$COMPAT_SUITE}"
# Finished roots are kept here as tarballs so that a fresh clone on the same machine (CI) unpacks one in seconds.
COMPAT_CACHE="${COMPAT_CACHE:-/var/cache/orthanc-anonymizer-compat}"

# What differs between the suites, one `name value...` line each (part of the root's key):
#   packages   installed beyond the Makefile's list (below)
#   suites     the apt suites of the main archive (the security archive's is <suite>-security)
#   apt        lines of the root's /etc/apt/apt.conf.d/99compat
#   script     debootstrap's script for the suite (bookworm's debootstrap has none named forky; sid's is the same)
# forky is Debian testing: its Release file may be past its Valid-Until on a mirror that is not refreshed (it was on
# this workplace's), so apt does not check that date there; the signature is checked as always. pyjpegls has no
# wheel for Python 3.14 and builds from source (g++ and python3-dev). liborthancframework1.13.0 is what the Orthanc
# Explorer 2 plugin needs at run time (the orthanc package does not pull it in).
compat_suite_config() {
    case "$COMPAT_SUITE" in
        trixie)
            printf 'packages\n'
            printf 'suites trixie trixie-updates\n'
            printf 'apt\n'
            printf 'script trixie\n'
            ;;
        forky)
            printf 'packages g++ liborthancframework1.13.0\n'
            printf 'suites forky\n'
            printf 'apt Acquire::Check-Valid-Until "false";\n'
            printf 'script sid\n'
            ;;
    esac
}

# One setting of compat_suite_config: compat_suite_setting NAME.
compat_suite_setting() {
    compat_suite_config | awk -v name="$1" '$1 == name { sub(/^[^ ]+ ?/, ""); print; exit }'
}

# What the root holds beyond debootstrap's minbase: what `make apt` installs on bookworm (the Makefile's
# APT_PACKAGES: Orthanc, orthanc-python, orthanc-postgresql, dcmtk, dicom3tools, tesseract, python3-venv, ...), less
# the browser (the browser tests run Debian bookworm's Chromium on the host against the root's Orthanc) and the
# PostgreSQL server (the tests start the host's), plus ca-certificates, the suite's own packages and
# COMPAT_EXTRA_PACKAGES (space-separated: what another tool needs in the root, say a build's compilers; it is part of
# the root's key, so a root with extras is another root). COMPAT_PACKAGES overrides the whole list.
compat_packages() {
    if [[ -n "${COMPAT_PACKAGES:-}" ]]; then
        printf '%s\n' "$COMPAT_PACKAGES"
        return
    fi
    local make_packages
    # shellcheck disable=SC2016 # $(APT_PACKAGES) is make's, not the shell's
    make_packages="$(make -s --no-print-directory -C "$COMPAT_CHECKOUT" \
        --eval 'compat-print-apt-packages: ; @echo $(APT_PACKAGES)' compat-print-apt-packages)"
    [[ -n "$make_packages" ]] || compat_die "no APT_PACKAGES in $COMPAT_CHECKOUT/Makefile"
    local package out=()
    # shellcheck disable=SC2086 # word lists
    for package in $make_packages ca-certificates $(compat_suite_setting packages) ${COMPAT_EXTRA_PACKAGES:-}; do
        case "$package" in chromium | chromium-driver | chromium-* | postgresql | postgresql-*) continue ;; esac
        case " ${out[*]} " in *" $package "*) continue ;; esac
        out+=("$package")
    done
    printf '%s\n' "${out[*]}"
}

compat_log() { printf 'compat: %s\n' "$*" >&2; }
compat_die() { printf 'compat: error: %s\n' "$*" >&2; exit 1; }

# Sets `force` from the scripts' only argument, --force.
# shellcheck disable=SC2034 # read by the scripts that source this file
compat_parse_force() {
    force=0
    case "${1:-}" in
        --force) force=1 ;;
        "") ;;
        *) compat_die "usage: $0 [--force]" ;;
    esac
}

# The Debian mirror that this host's apt uses (deb822 .sources or one-line .list files): the URI of the entry for the
# host's own release (bookworm), so the root comes from the same registry. COMPAT_MIRROR overrides it.
compat_mirror() {
    if [[ -n "${COMPAT_MIRROR:-}" ]]; then
        printf '%s\n' "${COMPAT_MIRROR%/}"
        return
    fi
    local uri
    uri="$(compat_apt_uri "$(compat_host_codename)")"
    [[ -n "$uri" ]] || compat_die "no Debian mirror for $(compat_host_codename) in /etc/apt/sources.list*; set COMPAT_MIRROR"
    printf '%s\n' "$uri"
}

# The security archive of the host's release (bookworm-security), if this host's apt has one.
# COMPAT_SECURITY_MIRROR overrides it.
compat_security_mirror() {
    if [[ -n "${COMPAT_SECURITY_MIRROR:-}" ]]; then
        printf '%s\n' "${COMPAT_SECURITY_MIRROR%/}"
        return
    fi
    compat_apt_uri "$(compat_host_codename)-security"
}

compat_host_codename() {
    if [[ -n "${COMPAT_HOST_CODENAME:-}" ]]; then
        printf '%s\n' "$COMPAT_HOST_CODENAME"
        return
    fi
    # shellcheck disable=SC1091
    (. /etc/os-release && printf '%s\n' "${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}")
}

# The URI of the first enabled `deb` entry for suite $1, in $COMPAT_APT_DIR (default /etc/apt), without a final /.
compat_apt_uri() {
    local suite="$1" file apt="${COMPAT_APT_DIR:-/etc/apt}"
    local -a files=()
    [[ -f "$apt/sources.list" ]] && files+=("$apt/sources.list")
    for file in "$apt"/sources.list.d/*.list "$apt"/sources.list.d/*.sources; do
        [[ -f "$file" ]] && files+=("$file")
    done
    ((${#files[@]})) || return 0
    for file in "${files[@]}"; do
        if [[ "$file" == *.sources ]]; then
            # deb822: stanzas separated by blank lines, fields Types, URIs, Suites, Enabled.
            awk -v want="$suite" '
                function flush() {
                    if (deb && enabled && has) { print uri; exit }
                    deb = 0; enabled = 1; has = 0; uri = ""
                }
                BEGIN { enabled = 1 }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { flush(); next }
                tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
                tolower($1) == "enabled:" { if (tolower($2) == "no") enabled = 0 }
                tolower($1) == "uris:" { uri = $2 }
                tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == want) has = 1 }
                END { flush() }
            ' "$file"
        else
            # one-line: deb [options] URI suite components
            awk -v want="$suite" '
                $1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i + 1) == want) { print $i; exit } }
            ' "$file"
        fi
    done | head -n 1 | sed 's#/*$##'
}

# Key of a root: what it was built from. A change to the package list, the suite, its settings or the commands of the
# build script (not its comments) makes a new one.
compat_root_key() {
    {
        printf '%s\n%s\n' "$COMPAT_SUITE" "$(compat_packages)"
        compat_suite_config
        grep -v '^[[:space:]]*#' "$COMPAT_CHECKOUT/tools/compat/build-root.sh"
    } | sha256sum | cut -c1-16
}
