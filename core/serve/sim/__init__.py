"""core.serve.sim: a step-by-step simulation of a continuous-batching engine (vLLM V1's scheduler) over a step-time
model, replaying the load test's workload."""
