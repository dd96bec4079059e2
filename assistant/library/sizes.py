"""Sizes in words a person reads: '1.23 GB', '98 MB', '0.43 GiB', '135M' parameters.

The one formatter for the CLI, the app and the converter. File and download sizes use decimal
units, as the Hub and file managers show them; memory uses binary units (`binary=True`), as
llama.cpp's logs and nvidia-smi report it.
"""

from __future__ import annotations

_DECIMAL = ((1000**4, "TB"), (1000**3, "GB"), (1000**2, "MB"), (1000, "kB"))
_BINARY = ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"))


def format_bytes(n: float | None, *, binary: bool = False) -> str:
    """'1.23 GB', '98 MB', '5.3 MB', '0.2 MB', '50 kB'; '?' for an unknown size.

    MB and MiB are used from a tenth of one ('0.2 MB'), GiB too ('0.43 GiB', as the memory
    estimates have always read), but GB only from 1 GB ('500 MB', as file sizes are usually
    written). GB and GiB get two decimals; MB and MiB one below 10, none above.
    `binary=True`: GiB/MiB/KiB, for memory.
    """
    if n is None:
        return "?"
    units = _BINARY if binary else _DECIMAL
    size = abs(n)
    for i, (unit, name) in enumerate(units):
        floor = unit / 10 if i == 2 or (binary and i <= 1) else unit
        if size >= floor:
            digits = 2 if i <= 1 else (1 if i == 2 and size < 10 * unit else 0)
            if i > 1 and round(size / unit, digits) >= units[i - 1][0] / unit:
                (unit, name), digits = units[i - 1], 2 if i <= 2 else 1  # not '1,000 MB'
            return f"{n / unit:,.{digits}f} {name}"
    return f"{n:,.0f} B"


def format_params(n: int) -> str:
    """Parameter counts as model names give them: '1.7B', '135M', '12K'."""
    if n >= 1e9:
        return f"{n / 1e9:.1f}B"
    if n >= 1e6:
        return f"{n / 1e6:.0f}M"
    return f"{n / 1e3:.0f}K"
