"""Demo data and traffic: a synthetic catalogue, users with hidden tastes, a simulator.

Nothing here is used on the serving path; ``recsys up`` and the benchmarks use it to
fill an empty platform with something readable and to drive realistic feedback.
"""

from serving.demo.catalogue import CATEGORIES, generate_catalogue
from serving.demo.tastes import Taste, click_probability, make_tastes, synthetic_histories

__all__ = [
    "CATEGORIES",
    "Taste",
    "click_probability",
    "generate_catalogue",
    "make_tastes",
    "synthetic_histories",
]
