#!/usr/bin/env bash
# Installs the agents of the example team (Policies/examples/duo.yaml) under
# /opt/agentos, which the policy names and shows its agents read-only:
#   bin/agentos-example-planner   the Swift planner (AgentKit), from this build
#   bin/agentos-llm-agent         the built-in LLM agent (policies' llm: workers)
#   examples/writer.py            the Python writer
#   python/                       the Python SDK (pip install Sources/AgentKitPython)
#                                 and protobuf, for PYTHONPATH
# Usage: Integration/install-examples.sh [BIN_DIR]   (default: swift build's debug bin dir)
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=/opt/agentos
bin_dir=${1:-$(swift build --show-bin-path)}
venv=${AGENTOS_PYTHON_VENV:-/opt/agentos-test/python}

[ -x "$bin_dir/agentos-example-planner" ] || { echo "install-examples: build first ($bin_dir/agentos-example-planner is missing)" >&2; exit 1; }
[ -x "$venv/bin/pip" ] || { echo "install-examples: run Integration/setup.sh first ($venv is missing)" >&2; exit 1; }

install -D -m 0755 "$bin_dir/agentos-example-planner" "$prefix/bin/agentos-example-planner"
install -D -m 0755 "$bin_dir/agentos-llm-agent" "$prefix/bin/agentos-llm-agent"
install -D -m 0644 Policies/examples/agents/writer.py "$prefix/examples/writer.py"

# The SDK again only when its sources changed (pip needs PyPI for protobuf).
stamp=$(find Sources/AgentKitPython -type f -not -path '*/__pycache__/*' -not -path '*.egg-info*' -not -path '*/build/*' \
    | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
if [ "$(cat "$prefix/python/.agentkit-stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$prefix/python" /tmp/agentkit-python-build
    # Built from a copy: pip leaves build/ and *.egg-info next to the sources.
    cp -r Sources/AgentKitPython /tmp/agentkit-python-build
    "$venv/bin/pip" install -q --disable-pip-version-check --target "$prefix/python" /tmp/agentkit-python-build
    rm -rf /tmp/agentkit-python-build
    echo "$stamp" > "$prefix/python/.agentkit-stamp"
fi
chmod -R a+rX "$prefix"
