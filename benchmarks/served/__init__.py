"""What is served is what was evaluated: the offline protocol replayed through the public
API (``python -m benchmarks.served``; see ``__main__``)."""
