"""Reports on anomaly scores: ROC and precision-recall curves saved as PNG files, and one
self-contained HTML report (:func:`write_report`)."""

from __future__ import annotations

from oddkit.report.html import build_report, sha256_of_file, write_report
from oddkit.report.plots import plot_curves, plot_pr, plot_roc

__all__ = ["build_report", "plot_curves", "plot_pr", "plot_roc", "sha256_of_file", "write_report"]
