"""Short human labels for figures the pages show."""

from __future__ import annotations


def ago(seconds: float) -> str:
    """How long ago, roughly: "just now", "1 min ago", "25 min ago", "3 h ago", "2 days ago"."""
    if seconds < 60:
        return "just now"
    if seconds < 90:
        return "1 min ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86_400:.0f} days ago"


def count(n: int, noun: str) -> str:
    """``n`` and the noun, plural unless one: "1 event", "1,204 events"."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")
