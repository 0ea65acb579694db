"""Reports on anomaly scores: ROC and precision-recall curves saved as PNG files."""

from __future__ import annotations

from oddkit.report.plots import plot_curves, plot_pr, plot_roc

__all__ = ["plot_curves", "plot_pr", "plot_roc"]
