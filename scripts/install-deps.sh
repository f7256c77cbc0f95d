#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs what building and testing lst needs. Idempotent: does nothing when everything is already there.
#   Debian/Ubuntu packages: build-essential cmake libeigen3-dev doctest-dev nlohmann-json3-dev libutf8proc-dev pkg-config
#                           libcli11-dev libopenblas-openmp-dev (for the -DLST_CBLAS=ON build)
#                           (+ python3-pip when no pip is available)
#   PyPI:                   conan>=2 (when no `conan` is on PATH)
set -euo pipefail

log() { printf '[install-deps] %s\n' "$*"; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    log "warning: not root and no sudo; apt-get may fail"
  fi
fi

packages=(build-essential cmake libeigen3-dev doctest-dev nlohmann-json3-dev libutf8proc-dev pkg-config libcli11-dev
  libopenblas-openmp-dev)
have_pip() { command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; }
if ! have_pip; then
  packages+=(python3-pip)
fi

is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

if command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${packages[@]}"; do
    is_installed "$p" || missing+=("$p")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "apt packages: all present"
  else
    log "apt packages to install: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
else
  log "warning: not a Debian-like system (no apt-get/dpkg-query); install these yourself: ${packages[*]}"
fi

# Conan 2 (for `conan create`), from PyPI. An earlier `pip install --user` may have left it in ~/.local/bin.
user_bin="$(python3 -m site --user-base 2>/dev/null || echo "$HOME/.local")/bin"
if ! command -v conan >/dev/null 2>&1 && [ -x "$user_bin/conan" ]; then
  export PATH="$PATH:$user_bin"
fi
if command -v conan >/dev/null 2>&1; then
  log "conan: $(conan --version)"
else
  have_pip || { log "error: no pip for python3"; exit 1; }
  pip_install() {
    local args=(install --quiet "conan>=2")
    # Outside a virtualenv (and not root), install for the user.
    if [ -z "${VIRTUAL_ENV:-}" ] && [ "$(id -u)" -ne 0 ]; then args+=(--user); fi
    python3 -m pip "${args[@]}" "$@"
  }
  log "installing conan>=2 with pip"
  pip_err="$(mktemp)"
  trap 'rm -f "$pip_err"' EXIT
  if ! pip_install 2>"$pip_err"; then
    if grep -q 'externally-managed-environment' "$pip_err"; then
      log "pip: externally managed environment (PEP 668); retrying with --break-system-packages"
      pip_install --break-system-packages
    else
      cat "$pip_err" >&2
      exit 1
    fi
  fi
  # pip --user puts scripts in ~/.local/bin; pyenv needs its shims refreshed.
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
  if ! command -v conan >/dev/null 2>&1; then
    if [ -x "$user_bin/conan" ]; then
      log "conan installed to $user_bin: add it to PATH (scripts/test.sh does)"
    else
      log "error: conan was installed but is not on PATH"
      exit 1
    fi
  else
    log "conan: $(conan --version)"
  fi
fi
log "done"
