"""Retrieval, blending, filtering and explanation: the orchestrator's domain logic."""
