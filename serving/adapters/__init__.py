"""Adapters: the application's ports implemented on PostgreSQL and Triton."""
