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
swift test --skip-build
