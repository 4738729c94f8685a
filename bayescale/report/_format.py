"""Numbers for people, shared by the tables (:mod:`.render`) and the figures (:mod:`.plots`).

``71.3B``, ``1.33T``, ``19.4``, ``0.339``: plain numbers with the suffixes k, M, B, T
(thousand, million, billion, trillion: the units of model sizes and token counts) where
they fit, and a compact ``5.76e23`` beyond (FLOPs), never ``5.76 x 10^23``.
"""

from __future__ import annotations

import math

__all__ = ["human", "interval", "SUFFIXES"]

#: Suffix and its power of ten.
SUFFIXES = (("T", 12), ("B", 9), ("M", 6), ("k", 3))


def _trim(text: str) -> str:
    if "." in text and "e" not in text:
        text = text.rstrip("0").rstrip(".")
    return text


def human(value, digits: int = 3, *, si: bool = True) -> str:
    """``value`` to ``digits`` significant digits, with a suffix where one fits.

    Parameters
    ----------
    value : a number (``None`` and NaN give ``""``).
    digits : significant digits.
    si : use k, M, B, T from a thousand to below 1e15; otherwise plain up to 1e6.

    Examples
    --------
    >>> human(7.09e10), human(1.33e12), human(19.42), human(5.76e23), human(0.33921)
    ('70.9B', '1.33T', '19.4', '5.76e23', '0.339')
    >>> human(2085.4, 4, si=False), human(2e-5)
    ('2085', '2e-5')
    >>> human(0.00146, 2), human(0.0045, 2), human(0.0999, 2), human(0.01, 2)
    ('0.0015', '0.0045', '0.1', '0.01')
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(x):
        return ""
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    mag = abs(x)
    if si and 1e3 * (1 - 0.5 * 10.0 ** -digits) <= mag < 1e15:
        for suffix, power in SUFFIXES:
            if mag >= 10.0 ** power * (1 - 0.5 * 10.0 ** -digits):
                scaled = x / 10.0 ** power
                return _trim(f"{scaled:.{max(digits - _int_digits(scaled), 0)}f}") + suffix
    if 1e-3 <= mag < (1e15 if si else 1e6):
        # below 1 the digits after the leading zeros count (0.00146 -> 0.0015, not 0.00)
        places = (digits - 1 - math.floor(math.log10(mag)) if mag < 1
                  else max(digits - _int_digits(x), 0))
        return _trim(f"{x:.{places}f}")
    mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
    return f"{_trim(mantissa)}e{int(exponent)}"


def _int_digits(x: float) -> int:
    """Digits before the decimal point of ``x`` after rounding (0 below 1)."""
    mag = abs(x)
    return 0 if mag < 1 else int(math.floor(math.log10(mag))) + 1


def interval(median, lower, upper, digits: int = 3, *, si: bool = True) -> str:
    """``"71B [60B, 84B]"``; the median alone when a bound is missing."""
    bounds = [float("nan") if v is None else float(v) for v in (lower, upper)]
    if not all(math.isfinite(v) for v in bounds):
        return human(median, digits, si=si)
    lo, hi = (human(v, digits, si=si) for v in bounds)
    return f"{human(median, digits, si=si)} [{lo}, {hi}]"
