"""Split a report that is longer than the text tower's context into windows that each fit.

Words (whitespace-separated) are packed greedily, in order, into windows of at
most ``limit`` tokens, special tokens included; every window is then counted
again as a whole and shortened word by word if the tokenizer merged across
words differently. A single word longer than a window is cut into pieces.
Nothing is dropped: joining the windows with spaces gives the report's words.
"""

from __future__ import annotations

from collections.abc import Callable

Counter = Callable[[list[str]], list[int]]


def _pieces(word: str, budget: int, count: Counter, specials: int) -> list[str]:
    """``word`` cut into pieces of at most ``budget`` tokens each (halving)."""
    if count([word])[0] - specials <= budget or len(word) <= 1:
        return [word]
    middle = len(word) // 2
    return _pieces(word[:middle], budget, count, specials) + _pieces(
        word[middle:], budget, count, specials
    )


def split_windows(text: str, limit: int, count: Counter) -> list[str]:
    """Windows of ``text`` of at most ``limit`` tokens each; ``count(texts)`` gives token counts with specials."""
    if count([text])[0] <= limit:
        return [text]
    specials = count([""])[0]
    budget = limit - specials
    if budget < 1:
        raise ValueError(f"a context of {limit} tokens leaves no room beside {specials} specials")
    words = [p for w in text.split() for p in _pieces(w, budget, count, specials)]
    costs = [c - specials for c in count(words)]
    windows: list[list[str]] = [[]]
    used = 0
    for word, cost in zip(words, costs, strict=True):
        if windows[-1] and used + cost > budget:
            windows.append([])
            used = 0
        windows[-1].append(word)
        used += cost
    out: list[str] = []
    for window in windows:
        pending = list(window)
        while pending:
            take = len(pending)
            while take > 1 and count([" ".join(pending[:take])])[0] > limit:
                take -= 1
            out.append(" ".join(pending[:take]))
            pending = pending[take:]
    return out
