#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, builds
# everything, then runs the unit tests of every module and the end-to-end
# suite (Integration/Tests) against the real agentd and agentctl binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

Integration/setup.sh
swift build                  # agentd, agentctl, agentos-demo-agent: the integration tests run them
swift build --build-tests
export AGENTOS_BIN_DIR="$(swift build --show-bin-path)"
Integration/install-examples.sh "$AGENTOS_BIN_DIR"   # the example team's agents, under /opt/agentos
# The Python SDK's own tests (a scripted kernel on a socketpair), against the package as pip installed it.
PYTHONPATH=/opt/agentos/python "${AGENTOS_PYTHON_VENV:-/opt/agentos-test/python}/bin/python" -m pytest -q -p no:cacheprovider Tests/AgentKitPythonTests
swift test --skip-build

# A real small model, as its own step after the fast tests: llama-cpp-python
# builds from source the first time (about 8 minutes on 2 cores; pip's wheel
# cache makes later installs take seconds). Alone:
#   Integration/setup-local-model.sh && AGENTOS_LOCAL_MODEL=1 swift test --skip-build --filter LocalModelTests
Integration/setup-local-model.sh
AGENTOS_LOCAL_MODEL=1 swift test --skip-build --filter LocalModelTests
