"""Offline quality benchmark: our user encoder, its ID-only ablation and the baselines on
MovieLens under the leave-one-out, all-items protocol (see ``__main__``)."""
