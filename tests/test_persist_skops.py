"""Sealed model folders whose skops estimator was edited: only trusted types, but internal arrays
that scikit-learn's Cython / libsvm code would follow out of bounds at the first score.

Each test saves a real small model, rebuilds its estimator with skops, spoils one array the way a
crafted file would, writes it back, re-seals the folder (so only oddkit's own checks can stop it)
and expects :class:`~oddkit.exceptions.ModelFileError` from :func:`oddkit.load`, before any score.
"""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import skops.io
from sklearn.base import BaseEstimator
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier, IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC, OneClassSVM
from sklearn.tree._tree import Tree

import oddkit
from oddkit import ClassifierConfidenceDetector, IsolationForestDetector, OneClassSVMDetector
from oddkit.exceptions import ModelFileError, OddkitError
from oddkit.persist import seal

RNG = np.random.default_rng(0)
X = RNG.normal(size=(90, 5))
CLASSES = np.array(["a", "b", "c"])[np.arange(90) % 3]
SKOPS_FILE = "estimator.skops"


def _classifier(estimator):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ClassifierConfidenceDetector(classifier=estimator, verbose=0, random_state=0).fit(X, CLASSES)


MODELS = {
    "iforest": lambda: IsolationForestDetector(n_estimators=5, random_state=0).fit(X),
    "iforest3": lambda: IsolationForestDetector(n_estimators=5, max_features=3, random_state=0).fit(X),
    "ocsvm": lambda: OneClassSVMDetector().fit(X),
    "knn": lambda: _classifier(KNeighborsClassifier(algorithm="kd_tree")),
    "knn-brute": lambda: _classifier(KNeighborsClassifier(algorithm="brute")),
    "hgb": lambda: _classifier(HistGradientBoostingClassifier(max_iter=5)),
    "gb": lambda: _classifier(GradientBoostingClassifier(n_estimators=5)),
    "svc": lambda: _classifier(SVC(probability=True, random_state=0)),
    "logreg": lambda: _classifier(LogisticRegression()),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Each model fitted once and saved; tests copy the folder before spoiling it."""
    root = tmp_path_factory.mktemp("skops")
    fitted = {}
    for name, make in MODELS.items():
        fitted[name] = make()
        fitted[name].save(root / name)
    return root, fitted


def _tampered(saved, tmp_path, name, mutate):
    """A sealed copy of model ``name`` whose estimator ``mutate`` edited (or replaced, if it returns one)."""
    folder = tmp_path / name
    shutil.copytree(saved[0] / name, folder)
    path = folder / SKOPS_FILE
    payload = path.read_bytes()
    estimator = skops.io.loads(payload, trusted=skops.io.get_untrusted_types(data=payload))
    replaced = mutate(estimator)
    estimator = replaced if isinstance(replaced, BaseEstimator) else estimator
    path.write_bytes(skops.io.dumps(estimator))
    seal(folder)
    return folder


def _retree(owner, change, n_features=None):
    """Give a fitted tree estimator a copy of its tree whose node array ``change`` edited."""
    tree = owner.tree_
    state = tree.__getstate__()
    state["nodes"] = nodes = state["nodes"].copy()
    change(nodes, np.flatnonzero(nodes["left_child"] != -1))
    rebuilt = Tree(n_features or tree.n_features, np.asarray(tree.n_classes, dtype=np.intp), tree.n_outputs)
    rebuilt.__setstate__(state)
    owner.tree_ = rebuilt


def _set(field, value):
    def change(nodes, inner):
        nodes[field][inner] = value
    return change


def _without_nodes(owner):  # scoring would read the root node of an empty array
    tree = owner.tree_
    state = tree.__getstate__()
    state.update(nodes=state["nodes"][:0].copy(), values=state["values"][:0].copy(), node_count=0)
    owner.tree_ = Tree(tree.n_features, np.asarray(tree.n_classes, dtype=np.intp), tree.n_outputs)
    owner.tree_.__setstate__(state)


def _loop_back(nodes, inner):  # an inner node whose left child is the root: a path that never ends
    nodes["left_child"][inner[1]] = 0


def _refused(folder, match=r"estimator\.skops (holds|cannot)"):
    with pytest.raises(ModelFileError, match=match):
        oddkit.load(folder)


# -- 1. decision trees and IsolationForest --------------------------------------------------------

def _replace(attribute, function):
    def mutate(estimator):
        setattr(estimator, attribute, function(getattr(estimator, attribute)))
    return mutate


ISOLATION_FOREST = {
    # the audit's reproducer: n_features=2**30 hides split feature 10**8 from a tree-only check
    "tree_wider_than_forest": ("iforest", lambda e: _retree(e.estimators_[0], _set("feature", 10**8), 2**30)),
    "split_feature_out_of_range": ("iforest", lambda e: _retree(e.estimators_[0], _set("feature", 10**8))),
    "child_loops_back": ("iforest", lambda e: _retree(e.estimators_[0], _loop_back)),
    "tree_without_nodes": ("iforest", lambda e: (_without_nodes(e.estimators_[0]), setattr(  # depth arrays to match
        e, "_decision_path_lengths", [np.zeros(0)] + list(e._decision_path_lengths[1:])), setattr(
        e, "_average_path_length_per_tree", [np.zeros(0)] + list(e._average_path_length_per_tree[1:])))),
    "feature_subset_out_of_range": ("iforest3", _replace("estimators_features_",
                                                         lambda f: [np.array([0, 1, 10**6])] + list(f[1:]))),
    "feature_subset_missing": ("iforest3", _replace("estimators_features_", lambda f: list(f[:-1]))),
    "subset_width_not_the_trees": ("iforest3", lambda e: (setattr(e, "_max_features", 4), setattr(
        e, "estimators_features_", [np.array([0, 1, 2, 10**6])] * len(e.estimators_)))),
    "path_lengths_short": ("iforest", _replace("_decision_path_lengths", lambda d: [a[:2] for a in d])),
    "average_path_lengths_missing": ("iforest", _replace("_average_path_length_per_tree", lambda a: list(a[:-1]))),
    "max_samples_not_positive": ("iforest", lambda e: setattr(e, "max_samples_", 0)),
    "n_features_in_mismatch": ("iforest", lambda e: setattr(e, "n_features_in_", 3)),
    "nan_average_path_length": ("iforest", _replace("_average_path_length_per_tree",
                                                    lambda a: [np.full_like(x, np.nan) for x in a])),
}


@pytest.mark.parametrize("case", ISOLATION_FOREST)
def test_inconsistent_isolation_forest_is_refused(case, saved, tmp_path):
    _refused(_tampered(saved, tmp_path, *ISOLATION_FOREST[case]))


GRADIENT_BOOSTING = {
    "tree_wider_than_model": lambda e: _retree(e.estimators_[0, 0], _set("feature", 10**8), 2**30),
    "more_trees_per_stage_than_outputs": _replace("estimators_", lambda s: np.concatenate([s, s[:, :1]], axis=1)),
}


@pytest.mark.parametrize("case", GRADIENT_BOOSTING)
def test_inconsistent_gradient_boosting_is_refused(case, saved, tmp_path):
    _refused(_tampered(saved, tmp_path, "gb", GRADIENT_BOOSTING[case]))


# -- 2. nearest neighbours ------------------------------------------------------------------------

def _kd_state(index, change):
    def mutate(estimator):
        state = list(estimator._tree.__getstate__())
        state[index] = change(state[index])
        estimator._tree.__setstate__(tuple(state))
    return mutate


def _kd_nodes_past_the_rows(nodes):
    nodes = nodes.copy()
    nodes["idx_start"], nodes["idx_end"] = 0, 10**8
    return nodes


def _with(array, index, value):
    array = array.copy()
    array[index] = value
    return array


NEIGHBOURS = {
    "labels_out_of_range": _replace("_y", lambda y: _with(y, 0, 10**6)),
    "one_label_missing": _replace("_y", lambda y: y[:-1]),
    "rows_narrower_than_features": _replace("_fit_X", lambda rows: rows[:, :2].copy()),
    "more_neighbours_than_rows": lambda e: setattr(e, "n_neighbors", 10**6),
    "nan_row": _replace("_fit_X", lambda rows: _with(rows, (0, 0), np.nan)),
    "other_metric": lambda e: setattr(e, "effective_metric_", "chebyshev"),
}


@pytest.mark.parametrize("case", NEIGHBOURS)
def test_inconsistent_nearest_neighbours_are_refused(case, saved, tmp_path):
    _refused(_tampered(saved, tmp_path, "knn", NEIGHBOURS[case]))


@pytest.mark.parametrize("mutate", [
    _kd_state(1, np.zeros_like),  # every index row 0: wrong neighbours if this tree were used
    _kd_state(2, lambda nodes: _with(nodes, "radius", 0.0)),
], ids=["index_array", "node_radius"])
def test_saved_kd_tree_is_rebuilt_not_trusted(mutate, saved, tmp_path):
    """The k-d tree in the file is never used: loading rebuilds it from the checked training rows,
    so an edited tree (here one that stays in bounds) changes nothing."""
    loaded = oddkit.load(_tampered(saved, tmp_path, "knn", mutate))
    np.testing.assert_array_equal(loaded.decision_function(X), saved[1]["knn"].decision_function(X))


def test_kd_tree_indices_past_the_rows_are_never_followed(saved, tmp_path):
    """The audit's reproducers (indices 10**8 in the index array, node ranges to 10**8) load and
    score like the original model: the crafted tree is discarded."""
    folder = _tampered(saved, tmp_path, "knn", lambda e: (_kd_state(1, lambda a: np.full_like(a, 10**8))(e),
                                                          _kd_state(2, _kd_nodes_past_the_rows)(e)))
    loaded = oddkit.load(folder)
    np.testing.assert_array_equal(loaded.decision_function(X), saved[1]["knn"].decision_function(X))


# -- 3. histogram gradient boosting ---------------------------------------------------------------

def _predictors(change):
    def mutate(estimator):
        for trees in estimator._predictors:
            for predictor in trees:
                change(predictor, np.flatnonzero(predictor.nodes["is_leaf"] == 0))
    return mutate


def _categorical(bitset_idx, rows):
    def change(predictor, inner):
        predictor.nodes["is_categorical"][inner] = 1
        predictor.nodes["bitset_idx"][inner] = bitset_idx
        predictor.raw_left_cat_bitsets = np.zeros((rows, 8), dtype=np.uint32)
        predictor.binned_left_cat_bitsets = np.zeros((rows, 8), dtype=np.uint32)
    return change


def _predictor_loop_back(predictor, inner):
    predictor.nodes["left"][inner[-1]] = 0


HIST_GRADIENT_BOOSTING = {
    "split_feature_out_of_range": _predictors(lambda p, inner: p.nodes["feature_idx"].__setitem__(inner, 10**8)),
    "categorical_bitset_out_of_range": _predictors(_categorical(10**6, 0)),
    "categorical_split_on_numeric_feature": _predictors(_categorical(0, 1)),
    "child_loops_back": _predictors(_predictor_loop_back),
    "tree_missing_from_an_iteration": _replace("_predictors", lambda it: [trees[:-1] for trees in it]),
}


@pytest.mark.parametrize("case", HIST_GRADIENT_BOOSTING)
def test_inconsistent_hist_gradient_boosting_is_refused(case, saved, tmp_path):
    _refused(_tampered(saved, tmp_path, "hgb", HIST_GRADIENT_BOOSTING[case]))


# -- 4. libsvm: OneClassSVM and SVC ---------------------------------------------------------------

def _dual(function):
    def mutate(estimator):
        estimator._dual_coef_ = function(estimator._dual_coef_)
        estimator.dual_coef_ = estimator._dual_coef_
    return mutate


def _more_support_vectors_than_rows(estimator, n=500):
    estimator.support_vectors_ = np.zeros((n, 5))
    estimator._n_support = np.array([n, 0], dtype=np.int32)
    estimator.support_ = np.arange(n, dtype=np.int32)
    estimator._dual_coef_ = estimator.dual_coef_ = np.ones((1, 1))


ONE_CLASS_SVM = {
    "dual_coef_cut_to_one": _dual(lambda d: d[:, :1].copy()),
    "support_vectors_narrower_than_rows": _replace("support_vectors_", lambda sv: sv[:, :2].copy()),
    "more_support_vectors_than_rows": _more_support_vectors_than_rows,
    "support_count_too_large": lambda e: setattr(e, "_n_support", np.array([10**6, 0], dtype=np.int32)),
    "support_index_past_the_rows": _replace("support_", lambda s: s + 10**6),
    "two_intercepts": lambda e: setattr(e, "_intercept_", np.zeros(2)),
    "gamma_nan": lambda e: setattr(e, "_gamma", np.float64(np.nan)),
    "precomputed_kernel": lambda e: setattr(e, "kernel", "precomputed"),
    "negative_degree": lambda e: (setattr(e, "kernel", "poly"), setattr(e, "degree", -5)),
    "classifier_impl": lambda e: setattr(e, "_impl", "c_svc"),
    "nan_support_vector": _replace("support_vectors_", lambda sv: _with(sv, (0, 0), np.nan)),
}


@pytest.mark.parametrize("case", ONE_CLASS_SVM)
def test_inconsistent_one_class_svm_is_refused(case, saved, tmp_path):
    _refused(_tampered(saved, tmp_path, "ocsvm", ONE_CLASS_SVM[case]))


SVC_CASES = {
    "probability_pairs_cut": lambda e: (setattr(e, "_probA", e._probA[:1].copy()),
                                        setattr(e, "_probB", e._probB[:1].copy())),
    "dual_coef_one_row_for_three_classes": _dual(lambda d: d[:1].copy()),
    "support_counts_do_not_sum": _replace("_n_support", lambda n: _with(n, 0, n[0] + 1)),
    "intercepts_cut": _replace("_intercept_", lambda i: i[:2].copy()),
}


@pytest.mark.parametrize("case", SVC_CASES)
def test_inconsistent_svc_is_refused(case, saved, tmp_path):
    _refused(_tampered(saved, tmp_path, "svc", SVC_CASES[case]))


# -- 5. the estimator's width against the detector's, and linear weights --------------------------

@pytest.mark.parametrize("name, narrow", [
    ("iforest", lambda: IsolationForest(n_estimators=5, random_state=0).fit(X[:, :3])),
    ("ocsvm", lambda: OneClassSVM().fit(X[:, :3])),
    ("logreg", lambda: LogisticRegression().fit(X[:, :3], np.arange(90) % 3)),
])
def test_consistent_estimator_of_another_width_is_refused(name, narrow, saved, tmp_path):
    """A whole estimator fitted on 3 columns is consistent in itself, but not with the detector's 5."""
    # the classifier backend's own check (classifier.py) refuses the scikit-learn classifier's width
    _refused(_tampered(saved, tmp_path, name, lambda e: narrow()),
             match="estimator.skops holds an estimator of 3 features" if name != "logreg" else "does not match")


@pytest.mark.parametrize("mutate", [
    _replace("coef_", lambda c: c[:, :2].copy()),
    _replace("coef_", lambda c: _with(c, (0, 0), np.nan)),
], ids=["coef_narrower_than_features", "nan_coef"])
def test_inconsistent_logistic_regression_is_refused(mutate, saved, tmp_path):
    _refused(_tampered(saved, tmp_path, "logreg", mutate))


def test_saving_refuses_an_estimator_loading_would_refuse(tmp_path):
    """No folder is written that cannot be loaded: a non-Euclidean neighbours classifier."""
    model = _classifier(KNeighborsClassifier(algorithm="brute", metric="manhattan"))
    with pytest.raises(OddkitError, match="loading would refuse"):
        model.save(tmp_path / "m")


# -- untampered models ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_untampered_models_load_and_score_identically(name, saved):
    loaded = oddkit.load(saved[0] / name)
    np.testing.assert_array_equal(loaded.decision_function(X), saved[1][name].decision_function(X))
