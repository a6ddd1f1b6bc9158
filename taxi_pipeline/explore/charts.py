"""Matplotlib charts of evaluation and data statistics, saved into the notebook as PNG.

Figures are built with `matplotlib.figure.Figure`, not pyplot: a notebook shows
each one once, where it is displayed, and nothing needs a GUI backend.
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from tensorflow_metadata.proto.v0 import statistics_pb2


def metric_by_slice(table: pd.DataFrame, metric: str, count: str = "example_count") -> Figure:
    """Bars of `metric` per slice of a `slice_table`; each bar labelled with its example count."""
    figure = Figure(figsize=(max(4.0, 0.35 * len(table) + 2), 3.2), layout="constrained")
    axes = figure.subplots()
    labels = [str(label) for label in table.index]
    bars = axes.bar(labels, table[metric].fillna(0.0), color="#4285f4")
    if count in table:
        axes.bar_label(bars, labels=[f"{n:.0f}" for n in table[count]], fontsize=7)
    axes.set_xlabel(table.index.name or "slice")
    axes.set_ylabel(metric)
    axes.set_title(f"{metric} by {table.index.name} (bar labels: examples)")
    axes.tick_params(axis="x", labelrotation=90 if len(labels) > 8 else 0, labelsize=8)
    return figure


def metrics_over_time(history: pd.DataFrame, names: Sequence[str]) -> Figure:
    """One line per metric across the evaluations of a `history_table`; blessed runs filled."""
    figure = Figure(figsize=(6.5, 3.2), layout="constrained")
    axes = figure.subplots()
    x = np.arange(len(history))
    for name in names:
        line, = axes.plot(x, history[name], marker="o", fillstyle="none", label=name)
        blessed = history["blessed"].fillna(False).to_numpy(dtype=bool)
        axes.plot(x[blessed], history[name][blessed], "o", color=line.get_color())
    axes.set_xticks(x, [str(t)[:19] for t in history["evaluated"]], rotation=30, ha="right", fontsize=8)
    axes.set_ylabel("overall value")
    axes.set_title("Evaluations over time (filled: blessed)")
    axes.legend(fontsize=8)
    return figure


def _numeric_histogram(stats: statistics_pb2.NumericStatistics):
    for histogram in stats.histograms:
        if histogram.type == statistics_pb2.Histogram.STANDARD and histogram.buckets:
            return histogram.buckets
    return []


def feature_distributions(
    stats_by_split: Dict[str, statistics_pb2.DatasetFeatureStatisticsList], top_k: int = 8
) -> Figure:
    """A panel per feature: numeric histograms or string top values, splits side by side
    (shares of each split, so splits of different sizes compare)."""
    features: Dict[str, Dict[str, statistics_pb2.FeatureNameStatistics]] = {}
    for split, stats in stats_by_split.items():
        for feature in stats.datasets[0].features:
            name = ".".join(feature.path.step) or feature.name
            features.setdefault(name, {})[split] = feature
    names = sorted(features)
    columns = 3
    rows = max(1, -(-len(names) // columns))
    figure = Figure(figsize=(4.2 * columns, 2.6 * rows), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    width = 0.8 / max(1, len(stats_by_split))
    for axes, name in zip(grid.flat, names):
        for offset, (split, feature) in enumerate(features[name].items()):
            kind = feature.WhichOneof("stats")
            if kind == "num_stats":
                buckets = _numeric_histogram(feature.num_stats)
                total = sum(b.sample_count for b in buckets) or 1.0
                axes.stairs(
                    [b.sample_count / total for b in buckets],
                    [buckets[0].low_value] + [b.high_value for b in buckets] if buckets else [0],
                    label=split,
                )
            elif kind == "string_stats":
                top = list(feature.string_stats.top_values)[:top_k]
                total = feature.string_stats.common_stats.num_non_missing or 1.0
                positions = np.arange(len(top)) + offset * width
                axes.bar(positions, [v.frequency / total for v in top], width, label=split)
                if offset == 0:
                    axes.set_xticks(positions, [v.value[:12] for v in top], rotation=60, fontsize=7)
        axes.set_title(name, fontsize=9)
        axes.tick_params(labelsize=7)
    for axes in list(grid.flat)[len(names):]:
        axes.set_visible(False)
    if names:
        grid.flat[0].legend(fontsize=7)
    figure.suptitle("Feature distributions by split (share of examples)")
    return figure
