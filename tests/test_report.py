"""The HTML report: its content (escaping, numbers, offline) and, in headless Chromium, that every
section shows, every plot decodes and the console stays clean."""

from __future__ import annotations

import hashlib
import html as html_lib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator

from oddkit import AutoEncoderDetector, GaussianDetector
from oddkit.exceptions import DataError
from oddkit.metrics import at_prevalence
from oddkit.report import build_report, write_report
from oddkit.threshold import choose_threshold

COLUMNS = ["amount", "<b>age</b>", "duration"]
LABELLED_SECTIONS = {"summary", "metrics", "curves", "histogram", "confusion", "anomalies", "groups", "model-card"}
UNLABELLED_SECTIONS = {"summary", "metrics", "histogram", "anomalies", "model-card"}


@pytest.fixture(scope="module")
def fitted():
    """An auto-encoder (it has ``explain``) trained on normal rows, with a cost threshold stating
    a production anomaly rate of 0.17%, and labelled test rows whose anomalies are shifted in
    ``amount``."""
    rng = np.random.default_rng(0)
    train = pd.DataFrame(rng.normal(size=(300, 3)), columns=COLUMNS)
    detector = AutoEncoderDetector(epochs=5, random_state=0, verbose=0).fit(train)
    X = pd.DataFrame(np.r_[rng.normal(size=(190, 3)), rng.normal(size=(10, 3)) + [6.0, 0.0, 0.0]],
                     columns=COLUMNS, index=[f"tx-{i}" for i in range(200)])
    y = np.r_[np.zeros(190, int), np.ones(10, int)]
    detector.set_threshold(choose_threshold(detector.decision_function(X), y, "cost:1,50,0.0017"))
    groups = np.where(y == 1, "attack<script>alert(1)</script>", "normal")
    return detector, X, y, groups


# --- content, no browser ------------------------------------------------------------------------


def test_report_is_self_contained_and_escaped(fitted, tmp_path) -> None:
    detector, X, y, groups = fitted
    out = write_report(detector, X, y, tmp_path / "nested" / "report.html", groups=groups, data_name="<i>dev</i>.csv")
    text = out.read_text(encoding="utf-8")
    # Nothing to fetch: no scripts, no external URLs, every image inline, a CSP that forbids fetching.
    assert "<script" not in text
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", text)
    sources = re.findall(r'<img[^>]*src="([^"]*)"', text)
    assert len(sources) == 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "default-src 'none'" in text
    # User strings are escaped wherever they appear.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;b&gt;age&lt;/b&gt;" in text and "<b>age</b>" not in text
    assert "&lt;i&gt;dev&lt;/i&gt;.csv" in text
    for section in LABELLED_SECTIONS:
        assert f'<section id="{section}">' in text


def test_report_metrics_at_the_production_prevalence(fitted) -> None:
    detector, X, y, _ = fitted
    text, metrics = build_report(detector, X, y)
    # The production rate and costs come from the detector's cost goal.
    assert metrics["production"]["prevalence"] == 0.0017
    assert metrics["costs"] == {"false_alarm": 1.0, "miss": 50.0}
    expected = at_prevalence(metrics["data"]["recall"], metrics["data"]["fpr"], 0.0017, costs=(1, 50))
    assert metrics["production"] == pytest.approx(expected)
    assert "at the production anomaly rate (0.17%)" in text
    assert "at this data's anomaly rate (5%)" in text
    assert "alerts per 10,000 rows" in text and "expected cost per row" in text
    # A stated prevalence wins over the goal's.
    _, other = build_report(detector, X, y, prevalence=0.01)
    assert other["production"]["prevalence"] == 0.01


def test_report_draws_explanations_of_the_top_anomalies(fitted) -> None:
    detector, X, y, _ = fitted
    text, _ = build_report(detector, X, y, top=7)
    rows = re.findall(r'<tr>\s*<td class="num">(\d+)</td><td>([^<]*)</td>', text)
    assert [int(rank) for rank, _ in rows] == list(range(1, 8))
    scores = pd.Series(detector.decision_function(X), index=X.index)
    assert [row for _, row in rows] == list(scores.sort_values(ascending=False, kind="stable").index[:7])
    assert text.count('class="bar-row"') == 7 * 3  # three columns, each drawn as a bar
    # The shifted column carries the largest share in the top rows: the first bar of each row.
    first_bars = re.findall(r'<td class="bars">\s*<div class="bar-row"><span class="bar-label" title="([^"]*)"', text)
    assert first_bars.count("amount") >= 6


class _NoExplain(BaseEstimator):
    """A fitted detector without ``explain``, as a third-party one may be."""

    def __init__(self, inner=None) -> None:
        self.inner = inner
        self.threshold_ = inner.threshold_
        self.threshold_goal_ = inner.threshold_goal_
        self.decision_scores_ = inner.decision_scores_

    def fit(self, X, y=None):
        return self

    def decision_function(self, X):
        return self.inner.decision_function(X)

    def __sklearn_is_fitted__(self) -> bool:
        return True


def test_report_without_explain_or_labels(tmp_path) -> None:
    rng = np.random.default_rng(1)
    detector = _NoExplain(GaussianDetector().fit(rng.normal(size=(100, 2))))
    text, metrics = build_report(detector, rng.normal(size=(50, 2)), groups=np.repeat(["a", "b"], 25))
    assert metrics is None
    assert "No labels were given" in text
    assert '<section id="curves">' not in text and '<section id="confusion">' not in text
    assert "_NoExplain has no explain method" in text and 'class="bar-row"' not in text
    assert '<section id="groups">' in text and "<td>a</td>" in text


def test_model_card_fingerprints(fitted, tmp_path) -> None:
    detector, X, y, _ = fitted
    folder = tmp_path / "model"
    detector.save(folder)
    integrity = hashlib.sha256((folder / "integrity.json").read_bytes()).hexdigest()
    text, _ = build_report(detector, X, y, model_folder=folder)
    assert integrity in text and "integrity.json" in text
    assert "AutoEncoderDetector" in text and "random_state" in text and "scikit-learn" in text
    assert "<td>300</td>" in text  # training rows
    text, _ = build_report(detector, X, y, model_folder=folder, training_fingerprint="ab" * 32)
    assert "ab" * 32 in text and integrity not in text


def test_group_column_by_name_and_bad_input(fitted) -> None:
    detector, X, y, groups = fitted
    with_groups = X.assign(kind=np.where(y == 1, "smurf", "normal"))
    text, _ = build_report(detector, with_groups, y, groups="kind")
    assert "<td>smurf</td>" in text
    with pytest.raises(DataError, match="group column 'nope' is not a column"):
        build_report(detector, X, y, groups="nope")
    with pytest.raises(DataError, match="y has 3 labels but the data has 200 rows"):
        build_report(detector, X, [0, 1, 0])
    with pytest.raises(DataError, match="groups has 2 values"):
        build_report(detector, X, y, groups=["a", "b"])
    with pytest.raises(DataError, match="prevalence"):
        build_report(detector, X, y, prevalence=2.0)


# --- in a real browser --------------------------------------------------------------------------

_PROBE = r"""<script>
(function () {
  var errors = [];
  window.addEventListener('error', function (e) {
    var t = e.target;
    errors.push('error: ' + (e.message || (t && (t.src || t.href)) || 'a resource failed to load'));
  }, true);
  document.addEventListener('securitypolicyviolation', function (e) {
    errors.push('content security policy: ' + e.violatedDirective + ' blocked ' + e.blockedURI);
  });
  ['error', 'warn'].forEach(function (level) {
    var original = console[level];
    console[level] = function () {
      errors.push(level + ': ' + Array.prototype.join.call(arguments, ' '));
      original.apply(console, arguments);
    };
  });
  window.addEventListener('load', function () {
    var sections = {};
    document.querySelectorAll('section').forEach(function (s) {
      var r = s.getBoundingClientRect(), st = getComputedStyle(s);
      sections[s.id] = {visible: r.width > 0 && r.height > 0 && st.display !== 'none' &&
                                 st.visibility !== 'hidden' && parseFloat(st.opacity) > 0,
                        heading: (s.querySelector('h2') || {}).textContent || ''};
    });
    var images = [];
    document.querySelectorAll('img').forEach(function (i) {
      images.push({id: i.id, decoded: i.complete && i.naturalWidth > 0, width: i.getBoundingClientRect().width});
    });
    var out = document.createElement('pre');
    out.id = 'probe-result';
    out.textContent = JSON.stringify({sections: sections, images: images, errors: errors});
    document.body.appendChild(out);
  });
})();
</script>
"""
"""Injected before the report's Content-Security-Policy (a meta CSP covers only what follows it):
records errors, CSP violations and console errors/warnings, then, once loaded, whether each
section is laid out and visible and each image decoded."""


def _chromium() -> str | None:
    candidates = [os.environ.get("ODDKIT_CHROMIUM"), "chromium", "chromium-browser", "google-chrome",
                  "google-chrome-stable"]
    for name in candidates:
        if name and (path := shutil.which(name)):
            return path
    return None


def _run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    binary = _chromium()
    if binary is None:
        pytest.skip("no Chromium found (install Debian's chromium, as .ci/run does, or set ODDKIT_CHROMIUM)")
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
               "--hide-scrollbars", f"--user-data-dir={tmp_path / 'chromium-profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def _check_in_browser(report: Path, tmp_path: Path, sections: set[str]) -> dict:
    """Open the report in headless Chromium; assert sections visible, images decoded, no console
    messages; save a screenshot. Returns the probe's findings."""
    # 1. The report as written: the page has no scripts, so any console line is an error or warning
    #    (a blocked fetch, a broken image, a CSP violation).
    plain = _run_chromium(tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom", report.as_uri())
    console = [line for line in plain.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    assert '<section id="model-card">' in plain.stdout
    # 2. A copy with the probe, for layout, visibility and decoding as the browser sees them.
    probed = report.with_name("probed.html")
    probed.write_text(report.read_text(encoding="utf-8").replace("<head>", "<head>\n" + _PROBE, 1), encoding="utf-8")
    dom = _run_chromium(tmp_path, "--dump-dom", probed.as_uri()).stdout
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', dom, re.S)
    assert found, "the probe did not run in Chromium"
    result = json.loads(html_lib.unescape(found.group(1)))
    assert result["errors"] == []
    assert set(result["sections"]) == sections
    hidden = [name for name, s in result["sections"].items() if not s["visible"] or not s["heading"].strip()]
    assert hidden == []
    assert result["images"] and all(i["decoded"] and i["width"] > 100 for i in result["images"]), result["images"]
    # 3. A screenshot, for a person to look at.
    shot = tmp_path / "report.png"
    _run_chromium(tmp_path, "--window-size=1280,2400", f"--screenshot={shot}", report.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    return result


def test_report_in_chromium(fitted, tmp_path) -> None:
    detector, X, y, groups = fitted
    report = write_report(detector, X, y, tmp_path / "report.html", groups=groups, data_name="dev.csv")
    result = _check_in_browser(report, tmp_path, LABELLED_SECTIONS)
    assert {i["id"] for i in result["images"]} == {"roc-curve", "pr-curve", "score-histogram"}


def test_unlabelled_report_in_chromium(fitted, tmp_path) -> None:
    detector, X, _, _ = fitted
    report = write_report(detector, X, out=tmp_path / "report.html")
    result = _check_in_browser(report, tmp_path, UNLABELLED_SECTIONS)
    assert [i["id"] for i in result["images"]] == ["score-histogram"]
