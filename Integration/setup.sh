#!/usr/bin/env bash
# Installs the system packages Agent OS builds and tests with (Debian 12 /
# Ubuntu, as root or through sudo). Safe to run again: it installs only what
# is missing. The Swift 6 toolchain itself must already be on PATH.
set -euo pipefail

packages=(
    libsqlite3-dev   # GRDB's SQLite (the state store)
    libseccomp-dev   # seccomp filters (confinement)
    libcap-dev       # capability sets (confinement)
    pkg-config       # how the system libraries are found
    util-linux       # setpriv, used by the permission tests
    procps           # ps/pgrep, used by the demo
    sqlite3          # the CLI the audit-chain tests tamper with the store through
    python3          # the tool tests run it in a confined shell (the network probe)
)

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    echo "setup: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# A real MCP server from PyPI for the MCP tests, in a venv anyone may read
# (agents run as their own uids). Only when missing.
mcp_venv=${AGENTOS_MCP_TIME_VENV:-/opt/agentos-test/mcp-time}
if [ ! -x "$mcp_venv/bin/mcp-server-time" ]; then
    echo "setup: installing mcp-server-time (PyPI) into $mcp_venv"
    dpkg-query -W -f='${Status}' python3-venv 2>/dev/null | grep -q "install ok installed" || {
        [ "$(id -u)" = 0 ] || sudo=sudo
        ${sudo:-} apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    }
    /usr/bin/python3 -m venv "$mcp_venv"
    "$mcp_venv/bin/pip" install -q --disable-pip-version-check mcp-server-time
    chmod -R a+rX "$mcp_venv"
fi

# Python for the agent SDK's tests (pytest) and for installing it with pip
# (Integration/install-examples.sh): a venv of the system python3, the one
# agents run.
py_venv=${AGENTOS_PYTHON_VENV:-/opt/agentos-test/python}
if [ ! -x "$py_venv/bin/pytest" ]; then
    echo "setup: creating $py_venv (pytest, protobuf from PyPI)"
    dpkg-query -W -f='${Status}' python3-venv 2>/dev/null | grep -q "install ok installed" || {
        [ "$(id -u)" = 0 ] || sudo=sudo
        ${sudo:-} apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    }
    /usr/bin/python3 -m venv "$py_venv"
    "$py_venv/bin/pip" install -q --disable-pip-version-check pytest
    chmod -R a+rX "$py_venv"
fi

if ! command -v swift >/dev/null; then
    echo "setup: the Swift toolchain (6.0 or later) is not on PATH; install it from swift.org first" >&2
    exit 1
fi
