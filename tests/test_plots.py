from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from oddkit.exceptions import DataError, LabelError
from oddkit.report import plot_curves, plot_pr, plot_roc

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == PNG_MAGIC


@pytest.fixture(scope="module")
def curves() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.1).astype(int)
    return {
        "autoencoder": (y, rng.normal(size=400) + 2 * y),
        "isolation forest": (y, rng.normal(size=400) + 0.5 * y),
    }


def test_plot_roc_writes_png(tmp_path: Path, curves: dict) -> None:
    out = plot_roc(
        curves, tmp_path / "nested" / "deeper" / "roc.png", title="test", thresholds={"autoencoder": 1.0}
    )
    assert out == tmp_path / "nested" / "deeper" / "roc.png"
    assert out.is_file() and _is_png(out)
    assert out.stat().st_size > 10_000


def test_plot_pr_writes_png(tmp_path: Path, curves: dict) -> None:
    # A threshold above every score flags nothing: no operating point is drawn, but no error either.
    out = plot_pr(curves, str(tmp_path / "pr.png"), thresholds={"autoencoder": 1.0, "isolation forest": 99.0})
    assert isinstance(out, Path)
    assert out.is_file() and _is_png(out)
    assert out.stat().st_size > 10_000


def test_plot_curves_writes_both(tmp_path: Path, curves: dict) -> None:
    paths = plot_curves(curves, tmp_path / "report", prefix="test_")
    assert set(paths) == {"roc", "pr"}
    assert paths["roc"] == tmp_path / "report" / "test_roc.png"
    assert paths["pr"] == tmp_path / "report" / "test_pr.png"
    for p in paths.values():
        assert _is_png(p) and p.stat().st_size > 10_000


def test_plot_errors(tmp_path: Path, curves: dict) -> None:
    with pytest.raises(DataError, match="no curves"):
        plot_roc({}, tmp_path / "x.png")
    with pytest.raises(DataError, match="no curve has that name"):
        plot_roc(curves, tmp_path / "x.png", thresholds={"nope": 0.5})
    with pytest.raises(LabelError, match="needs labelled anomalies"):
        plot_pr({"a": (np.zeros(5), np.arange(5.0))}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
