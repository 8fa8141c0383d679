#!/usr/bin/env bash
# Installs the system packages the build and the tests need, with apt-get, only if missing:
#   kcat          tests/kcat.rs drives the broker with it
#   libclang-dev  bindgen (native dependencies)
#   java, maven   scripts/test-on-kafka.sh runs Apache Kafka (fetched from Maven Central with mvn)
#   kafkajs       (npm, into tests/clients/kafkajs) and kafka-python (pip): tests/other_clients.rs
# Runs `apt-get update` only when something has to be installed.
set -euo pipefail

missing=()
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)

install_client_libraries() {
    local root
    root="$(cd "$(dirname "$0")/.." && pwd)"
    if command -v npm >/dev/null 2>&1 && [ ! -d "$root/tests/clients/kafkajs/node_modules/kafkajs" ]; then
        echo "install-deps: installing kafkajs" >&2
        (cd "$root/tests/clients/kafkajs" && npm install --no-audit --no-fund --silent)
    fi
    if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import kafka' 2>/dev/null; then
        echo "install-deps: installing kafka-python" >&2
        python3 -m pip install --quiet --disable-pip-version-check kafka-python
    fi
}

if [ "${#missing[@]}" -eq 0 ]; then
    install_client_libraries
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
install_client_libraries
