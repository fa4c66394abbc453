"""Serving workloads as users deploy them: distinct prompts, arrival processes, SLOs and goodput, engine counters."""
