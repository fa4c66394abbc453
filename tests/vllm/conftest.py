"""The vLLM tests' fixtures (tests/vllm/server.py): one real vLLM server per test session, and one app configured
with it."""
from tests.vllm.server import endpoint_app, endpoint_page, vllm_endpoint  # noqa: F401  (fixtures)
