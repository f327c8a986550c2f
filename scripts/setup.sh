#!/usr/bin/env bash
# Prepare a checkout for development and tests, idempotently and without questions:
#   1. Debian packages the tests use: a real registry, skopeo, htpasswd, openssl, jq, and the
#      shell linter that ansible-test sanity skips its shell script test without;
#   2. the virtualenv .venv (Python 3.11) with requirements.txt + requirements-dev.txt;
#   3. the pip bootstrap script ansible-test's own sanity venvs need (see below).
# A second run with nothing changed takes well under a second: apt is skipped when every
# package is installed, pip when the stamp in .venv matches the requirement files.
# Environment: PYTHON (interpreter for the venv, default python3.11 or python3),
#              ONMETAL_SKIP_APT=1 (never touch apt; fail later if a tool is missing).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# --- 1. Debian packages -------------------------------------------------------------------
DEB_PACKAGES=(docker-registry skopeo apache2-utils openssl jq shellcheck time curl)

deb_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for pkg in "${DEB_PACKAGES[@]}"; do
        deb_installed "$pkg" || missing+=("$pkg")
    done
else
    log "no dpkg-query: not a Debian system, skipping Debian packages (${DEB_PACKAGES[*]})"
fi

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "${ONMETAL_SKIP_APT:-}" = 1 ]; then
        log "ONMETAL_SKIP_APT=1: not installing missing packages: ${missing[*]}"
    else
        SUDO=()
        if [ "$(id -u)" -ne 0 ]; then
            command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install ${missing[*]} by hand"
            SUDO=(sudo -n)
        fi
        log "installing Debian packages: ${missing[*]}"
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Use-Pty=0 \
            --no-install-recommends "${missing[@]}" </dev/null
        # The Debian package enables and starts a registry on :5000 with its own config;
        # the tests never use it (they start their own on 127.0.0.1), so leave it alone.
    fi
else
    log "Debian packages present: ${DEB_PACKAGES[*]}"
fi

# --- 2. virtualenv ----------------------------------------------------------------------------
VENV="$ROOT/.venv"
STAMP="$VENV/.onmetal-setup-stamp"

if [ -z "${PYTHON:-}" ]; then
    if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi
command -v "$PYTHON" >/dev/null 2>&1 || die "no $PYTHON on PATH (need Python 3.11)"
py_version="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[ "$py_version" = "3.11" ] || die "$PYTHON is Python $py_version; the tests need 3.11 (set PYTHON=...)"

want_stamp="$(
    {
        "$PYTHON" -c 'import sys; print(sys.version)'
        cat requirements.txt requirements-dev.txt
        # the install steps themselves: a change here re-installs too
        sed -n '/^# --- 2\./,$p' "$ROOT/scripts/setup.sh"
    } | sha256sum | cut -d' ' -f1
)"

venv_ok() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null
}

if venv_ok && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want_stamp" ]; then
    log "venv up to date: $VENV ($("$VENV/bin/python" --version 2>&1))"
else
    if ! venv_ok; then
        log "creating venv $VENV with $PYTHON ($("$PYTHON" --version 2>&1))"
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    rm -f "$STAMP"
    log "installing requirements.txt + requirements-dev.txt into $VENV"
    "$VENV/bin/python" -m pip install --quiet --progress-bar off --no-input \
        -r requirements.txt -r requirements-dev.txt </dev/null
    "$VENV/bin/python" -m pip check
    printf '%s\n' "$want_stamp" >"$STAMP"
    log "venv ready: $("$VENV/bin/ansible" --version | head -1)"
fi

# --- 3. pip bootstrap for ansible-test's own venvs ---------------------------------------------
# `ansible-test sanity` (even with --local) runs most tests in venvs it makes under
# ~/.ansible/test/venv, and puts pip into each with a get-pip script it downloads from
# ci-files.testing.ansible.com -- a host this machine cannot reach -- unless
# ~/.ansible/test/cache/get_pip_<version>.py exists. Put a stand-in there that does the same
# job from what is reachable: pip from the interpreter's bundled wheel (ensurepip), then the
# exact pip (and whatever else ansible-test asks for) from the package index.
pip_version="$("$VENV/bin/python" -c '
import types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version="3.11"))["pip"])
')" || die "cannot read the pip version ansible-test bootstraps"
get_pip="${HOME:-/root}/.ansible/test/cache/get_pip_${pip_version//./_}.py"
standin_marker="# gardenlinux.onmetal stand-in for get-pip.py"
standin="$(cat <<'PYEOF'
# gardenlinux.onmetal stand-in for get-pip.py (written by scripts/setup.sh)
"""Install pip into the running interpreter, then `pip install --upgrade ARGS` (get-pip.py's contract)."""
import subprocess
import sys

args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install", "--upgrade", "--quiet"] + args)
PYEOF
)"
if [ -f "$get_pip" ] && ! head -n 1 "$get_pip" | grep -qF "$standin_marker"; then
    log "ansible-test pip bootstrap: using the existing $get_pip"
elif [ -f "$get_pip" ] && [ "$(cat "$get_pip")" = "$standin" ]; then
    log "ansible-test pip bootstrap: stand-in present ($get_pip)"
else
    mkdir -p "$(dirname "$get_pip")"
    printf '%s\n' "$standin" >"$get_pip.tmp" && mv "$get_pip.tmp" "$get_pip"
    log "ansible-test pip bootstrap: wrote the stand-in $get_pip"
fi
