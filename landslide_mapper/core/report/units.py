"""Numbers as a report writes them: thin spaces between thousands, units that read best."""

from __future__ import annotations

import math
from typing import Any

THIN = "\u202f"  # narrow no-break space: the thousands separator (SI / ISO 80000)


def format_number(value: Any, decimals: int = 0) -> str:
    """``12345.678`` -> ``12 345.68`` (``decimals=2``); None or NaN -> an en dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{float(value):,.{decimals}f}".replace(",", THIN)


def format_area(m2: float) -> str:
    """An area in the unit that reads best: m² below 1 ha, ha below 10 km², else km²."""
    if m2 < 10_000:
        return f"{format_number(m2)} m²"
    if m2 < 10_000_000:
        return f"{format_number(m2 / 10_000, 2)} ha"
    return f"{format_number(m2 / 1e6, 2)} km²"
