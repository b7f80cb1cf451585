"""``cli_args``: a command line from Python values, so tests spell options once and in one way."""

from __future__ import annotations

from collections.abc import Sequence


def cli_args(command: str | Sequence[str], *positional: object, **options: object) -> list[str]:
    """``[*command, *positional, --option value, ...]`` as strings.

    ``command`` is a word or a sequence of words (``("reports", "import")``). Option names take
    dashes for underscores; ``True`` is a bare flag, ``None`` and ``False`` are left out, a list
    or tuple repeats the option once per item (``set=["dim=16", "heads=2"]``).
    """
    args = [command] if isinstance(command, str) else list(command)
    args += [str(p) for p in positional]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            args.append(flag)
        elif isinstance(value, list | tuple):
            for item in value:
                args += [flag, str(item)]
        else:
            args += [flag, str(value)]
    return args
