"""Forgiving names: case-insensitive matching, aliases and "did you mean" suggestions.

Users type preset, task and model names the way other tools spell them
(``CONCH_ViT-B-16``, ``conch_v1``, ``efficientnet_lite0``). :func:`match_name`
accepts a name when it equals a choice or an alias after :func:`normalise`
(case, ``-``/``_``/``.``/space and an ``hf-hub:`` prefix ignored);
:func:`did_you_mean` suggests the closest choices for an error's hint.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping

_SEPARATORS = re.compile(r"[\s_\-.]+")


def normalise(name: str) -> str:
    """``name`` lower-cased, without an ``hf-hub:`` prefix and without ``-``, ``_``, ``.`` or spaces."""
    text = name.strip().lower().removeprefix("hf-hub:")
    return _SEPARATORS.sub("", text)


def match_name(
    name: str, choices: Iterable[str], aliases: Mapping[str, str] | None = None
) -> str | None:
    """The choice ``name`` means: exact, then normalised equality with a choice, then with an alias key."""
    choices = list(choices)
    if name in choices:
        return name
    wanted = normalise(name)
    for choice in choices:
        if normalise(choice) == wanted:
            return choice
    for alias, target in (aliases or {}).items():
        if normalise(alias) == wanted and target in choices:
            return target
    return None


def did_you_mean(
    name: str, choices: Iterable[str], aliases: Mapping[str, str] | None = None
) -> str:
    """``"did you mean 'x'?"`` (or two options), or ``""`` when nothing is close."""
    choices = list(choices)
    keyed = {normalise(c): c for c in choices}
    for alias, target in (aliases or {}).items():
        keyed.setdefault(normalise(alias), target)
    close = difflib.get_close_matches(normalise(name), list(keyed), n=3, cutoff=0.6)
    if not close:  # a prefix is a strong hint too ("camelyon" -> "camelyon16")
        close = [k for k in keyed if k.startswith(normalise(name)) or normalise(name).startswith(k)]
    found = list(dict.fromkeys(keyed[k] for k in close if normalise(name)))[:2]
    if not found:
        return ""
    return "did you mean " + " or ".join(f"'{f}'" for f in found) + "?"


def unknown_name_hint(
    name: str,
    choices: Iterable[str],
    aliases: Mapping[str, str] | None = None,
    listing: str = "choose from",
) -> str:
    """Hint for an unknown ``name``: a suggestion when one is close, then ``listing``: every choice."""
    choices = list(choices)
    suggestion = did_you_mean(name, choices, aliases)
    listing = f"{listing}: {', '.join(choices) or 'none'}"
    return f"{suggestion} {listing}" if suggestion else listing
