"""Training, evaluation and export of the user encoder."""
