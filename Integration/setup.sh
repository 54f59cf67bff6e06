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

# A venv of the system python3 (the one agents run) that anyone may read
# (agents run as their own uids), with PACKAGES from PyPI; only when BINARY
# in it is missing.
python_venv() {
    local venv=$1 binary=$2; shift 2
    [ -x "$venv/bin/$binary" ] && return
    echo "setup: installing $* (PyPI) into $venv"
    dpkg-query -W -f='${Status}' python3-venv 2>/dev/null | grep -q "install ok installed" || {
        [ "$(id -u)" = 0 ] || sudo=sudo
        ${sudo:-} apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    }
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "$@"
    chmod -R a+rX "$venv"
}
# A real MCP server for the MCP tests.
python_venv "${AGENTOS_MCP_TIME_VENV:-/opt/agentos-test/mcp-time}" mcp-server-time mcp-server-time
# pytest for the Python SDK's tests, and the pip that installs the SDK
# (Integration/install-examples.sh).
python_venv "${AGENTOS_PYTHON_VENV:-/opt/agentos-test/python}" pytest pytest

if ! command -v swift >/dev/null; then
    echo "setup: the Swift toolchain (6.0 or later) is not on PATH; install it from swift.org first" >&2
    exit 1
fi
