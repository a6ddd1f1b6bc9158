"""Numbers and values as the runners, notebooks and registry print them."""

from __future__ import annotations

import json
from typing import Mapping


def figure(value: float) -> str:
    """A metric as the runners print it: counts whole, rates to four places."""
    return f"{value:,.0f}" if float(value).is_integer() and abs(value) >= 1 else f"{value:.4f}"


def figures(values: Mapping[str, float]) -> str:
    """`auc 0.9224, example_count 686`."""
    return ", ".join(f"{name} {figure(value)}" for name, value in values.items())


def value_text(value: object) -> str:
    """A hyper-parameter value as the runners, tables and registry show it."""
    return f"{value:.4g}" if isinstance(value, float) else json.dumps(value) if isinstance(value, list) else str(value)
