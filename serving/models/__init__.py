"""Torch modules served by Triton; importable and testable without it."""
