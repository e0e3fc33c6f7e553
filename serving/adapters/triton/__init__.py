"""Triton: the model repository, the server process, and the client adapter."""
