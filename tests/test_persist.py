"""Saving and loading: identical scores for every detector, and no way to run code from a folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

import oddkit
from conftest import fast_autoencoder
from oddkit import (
    EnsembleDetector,
    GaussianDetector,
    IsolationForestDetector,
    KNNDetector,
    LOFDetector,
    OneClassSVMDetector,
    PCADetector,
)
from oddkit.exceptions import ModelFileError, OddkitError
from oddkit.persist import seal

FACTORIES = {
    "autoencoder": lambda: fast_autoencoder(epochs=5, noise="mask"),
    "gaussian": lambda: GaussianDetector(shrinkage="ledoit_wolf"),
    "pca": PCADetector,
    "ocsvm": OneClassSVMDetector,
    "iforest": lambda: IsolationForestDetector(n_estimators=20, random_state=0),
    "knn": lambda: KNNDetector(method="mean"),
    "lof": lambda: LOFDetector(n_neighbors=10),
    "ensemble": lambda: EnsembleDetector(members=("iforest", "autoencoder", "knn"), random_state=0),
}


@pytest.mark.parametrize("name", list(FACTORIES))
def test_loaded_model_scores_identically(name, mixed_frame, tmp_path):
    detector = FACTORIES[name]().fit(mixed_frame)
    detector.set_threshold(float(np.median(detector.decision_scores_)), goal="manual-test")
    detector.save(tmp_path / "model")
    assert {p.name for p in (tmp_path / "model").iterdir()} >= {"config.json", "weights.safetensors"}
    loaded = oddkit.load(tmp_path / "model")
    assert type(loaded) is type(detector)
    assert json.dumps(loaded.get_params(), default=list) == json.dumps(detector.get_params(), default=list)
    np.testing.assert_array_equal(loaded.decision_function(mixed_frame), detector.decision_function(mixed_frame))
    np.testing.assert_array_equal(loaded.predict(mixed_frame), detector.predict(mixed_frame))
    np.testing.assert_array_equal(loaded.predict_proba(mixed_frame), detector.predict_proba(mixed_frame))
    np.testing.assert_array_equal(loaded.decision_scores_, detector.decision_scores_)
    np.testing.assert_array_equal(loaded.labels_, detector.labels_)
    assert loaded.threshold_ == detector.threshold_ and loaded.threshold_goal_ == "manual-test"
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["class"] == type(detector).__name__
    assert set(config["versions"]) >= {"oddkit", "torch", "numpy", "scikit-learn"}
    integrity = json.loads((tmp_path / "model" / "integrity.json").read_text())
    assert set(integrity["sha256"]) == {p.name for p in (tmp_path / "model").iterdir()} - {"integrity.json"}
    assert all(len(digest) == 64 for digest in integrity["sha256"].values())


def test_autoencoder_embedding_survives_save(mixed_frame, tmp_path):
    detector = fast_autoencoder(epochs=3).fit(mixed_frame)
    detector.save(tmp_path / "ae")
    loaded = oddkit.load(tmp_path / "ae")
    np.testing.assert_array_equal(loaded.transform(mixed_frame), detector.transform(mixed_frame))
    assert loaded.history_ == detector.history_


def _saved(tmp_path, detector=None):
    X = np.random.default_rng(0).normal(size=(50, 3))
    (detector or GaussianDetector()).fit(X).save(tmp_path / "m")
    return tmp_path / "m"


def test_tampered_weights_are_refused(tmp_path):
    folder = _saved(tmp_path)
    data = bytearray((folder / "weights.safetensors").read_bytes())
    data[-1] ^= 1
    (folder / "weights.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum"):
        oddkit.load(folder)


def test_swapped_sklearn_file_is_refused_even_with_matching_checksum(tmp_path):
    import pickle

    folder = _saved(tmp_path, IsolationForestDetector(n_estimators=5, random_state=0))

    class Exploit:
        def __reduce__(self):
            return (print, ("code ran",))

    payload = pickle.dumps(Exploit())
    (folder / "estimator.skops").write_bytes(payload)
    seal(folder)
    with pytest.raises(ModelFileError, match="pickle"):
        oddkit.load(folder)


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(format_version=99), "format"),
    (lambda c: c.update({"class": "os.system"}), "unknown detector class"),
    # names the lazy registry must not resolve: the abstract base, a private class, a module, a dunder
    (lambda c: c.update({"class": "BaseDetector"}), "unknown detector class"),
    (lambda c: c.update({"class": "_SklearnAdapter"}), "unknown detector class"),
    (lambda c: c.update({"class": "autoencoder"}), "unknown detector class"),
    (lambda c: c.update({"class": "__class__"}), "unknown detector class"),
    (lambda c: c["params"].update(evil="__import__('os')"), "parameters"),
    (lambda c: c.pop("detector"), "incomplete"),
])
def test_edited_config_is_refused(tmp_path, edit, message):
    folder = _saved(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="config.json does not match its checksum"):
        oddkit.load(folder)  # the edit alone is caught by the checksum of config.json
    seal(folder)  # and with the checksum recomputed, by the check of what config.json holds
    with pytest.raises(ModelFileError, match=message):
        oddkit.load(folder)


def test_missing_folder_and_garbage(tmp_path):
    with pytest.raises(ModelFileError, match="config.json"):
        oddkit.load(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="integrity.json"):
        oddkit.load(tmp_path / "bad")
    seal(tmp_path / "bad")
    with pytest.raises(ModelFileError, match="weights.safetensors is missing"):
        oddkit.load(tmp_path / "bad")
    (tmp_path / "bad" / "weights.safetensors").write_bytes(b"\x08" + b"\x00" * 7 + b"{}      ")
    seal(tmp_path / "bad")
    with pytest.raises(ModelFileError, match="JSON"):
        oddkit.load(tmp_path / "bad")


def test_unsaveable_parameter_is_a_clear_error(tmp_path):
    detector = fast_autoencoder(epochs=1, random_state=np.random.RandomState(0))
    detector.fit(np.random.default_rng(0).normal(size=(30, 3)))
    with pytest.raises(OddkitError, match="random_state"):
        detector.save(tmp_path / "m")


def test_a_model_without_a_network_is_fitted_saved_loaded_and_scored_without_importing_torch(tmp_path):
    """oddkit.detectors imports each class on first use: a Gaussian, a PCA, the default on a table and an
    ensemble of neighbour members never import torch (about 1.4 s of every command's start), and the versions
    a folder records are those the libraries report themselves. (Models saved through skops, the isolation
    forest and the one-class SVM, still do: skops imports scikit-learn's estimator list, which imports torch.)"""
    import subprocess
    import sys

    code = ("import sys, json, numpy as np\nimport oddkit\n"
            "X = np.random.default_rng(0).normal(size=(200, 3))\n"
            "for name, model in [('g', oddkit.GaussianDetector()), ('p', oddkit.PCADetector()),"
            " ('d', oddkit.default_detector(random_state=0)),"
            " ('e', oddkit.EnsembleDetector(members=('knn', 'lof')))]:\n"
            f"    model.fit(X).save(r'{tmp_path}' + '/' + name)\n"
            f"    loaded = oddkit.load(r'{tmp_path}' + '/' + name)\n"
            "    assert (loaded.decision_function(X) == model.decision_function(X)).all()\n"
            "print('TORCH', 'torch' in sys.modules)\n"
            "import torch, sklearn, skops, safetensors\n"
            f"saved = json.load(open(r'{tmp_path}' + '/g/config.json'))['versions']\n"
            "print(saved == {**saved, 'torch': torch.__version__, 'scikit-learn': sklearn.__version__, "
            "'skops': skops.__version__, 'safetensors': safetensors.__version__})\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["TORCH", "False", "True"], result.stdout


def test_the_registry_imports_oddkits_classes_when_asked_and_keeps_user_classes():
    from oddkit.detectors import DETECTORS, BaseDetector
    from oddkit.detectors.base import BUILT_IN_DETECTORS

    assert list(DETECTORS)[:len(BUILT_IN_DETECTORS)] == list(BUILT_IN_DETECTORS)
    assert all(cls.__name__ == name and cls.__module__ == f"oddkit.detectors.{BUILT_IN_DETECTORS[name]}"
               for name, cls in DETECTORS.items() if name in BUILT_IN_DETECTORS)
    assert "GaussianDetector" in DETECTORS and "NoSuchDetector" not in DETECTORS
    saved = dict(DETECTORS)
    try:
        class MyDetector(BaseDetector):  # a user's class registers itself, after oddkit's
            pass

        assert list(DETECTORS)[-1] == "MyDetector" and DETECTORS["MyDetector"] is MyDetector
        DETECTORS.clear()  # oddkit's own come back from their modules, the user's does not
        assert DETECTORS["GaussianDetector"] is GaussianDetector and "MyDetector" not in DETECTORS
        with pytest.raises(KeyError):
            DETECTORS["MyDetector"]
    finally:
        DETECTORS.clear()
        DETECTORS.update(saved)
