#!/usr/bin/env bash
# Installs the system packages the build and the tests need, with apt-get, only if missing:
#   kcat          tests/kcat.rs drives the broker with it
#   libclang-dev  bindgen (native dependencies)
# Runs `apt-get update` only when something has to be installed.
set -euo pipefail

missing=()
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "install-deps: need root (or sudo) to install ${missing[*]}" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
