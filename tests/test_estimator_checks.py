"""scikit-learn's estimator contract, checked by scikit-learn itself.

oddkit follows the anomaly-detection score convention (predict: 1 = anomaly, 0 = normal;
decision_function: higher = more anomalous), the opposite of scikit-learn's outlier detectors
(predict in {-1, 1}, decision_function higher = more normal). The checks written for that sign
convention are the expected failures below; every other check must pass.

ClassifierConfidenceDetector and DisentangledAutoEncoderDetector are not checked here: their fit
needs the class of every training row (fit(X, classes)), which scikit-learn's checks cannot supply;
tests/test_classifier.py and tests/test_disentangle.py cover them.
Nor is TransformationDetector, which takes images only (scikit-learn's checks pass tables);
tests/test_transforms.py covers it.
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from oddkit import (
    AutoEncoderDetector,
    EnsembleDetector,
    GaussianDetector,
    IsolationForestDetector,
    KNNDetector,
    LOFDetector,
    OneClassSVMDetector,
    PCADetector,
    VAEDetector,
    VQVAEDetector,
)

SIGN_CONVENTION_CHECKS = {
    "check_outliers_fit_predict": "predict returns 0/1 (1 = anomaly), not scikit-learn's -1/1",
    "check_outliers_train": "predict returns 0/1 and decision_function is higher for anomalies",
}


# A float32 network's output for a row differs in the last bit between a one-row batch and a
# 20-row batch (BLAS picks other kernels; up to 2.4e-7 on the check's data, measured for all three
# auto-encoders). The threshold is one of the training scores, so the training row that defines it
# can flip label in check_methods_subset_invariance (the ensemble holds an auto-encoder). One
# network passed only because its scores happened to stay on the same side; the table default's
# five do not.
FLOAT32_BATCH_CHECKS = {
    "check_methods_subset_invariance": "float32 matrix products differ in the last bit between a one-row "
                                       "and a 20-row batch, which can flip the row that sits on the threshold",
}


def _expected_failures(estimator):
    if isinstance(estimator, (AutoEncoderDetector, EnsembleDetector)):
        return {**SIGN_CONVENTION_CHECKS, **FLOAT32_BATCH_CHECKS}
    return SIGN_CONVENTION_CHECKS


@parametrize_with_checks(
    [
        AutoEncoderDetector(epochs=3, verbose=0, random_state=0),
        VAEDetector(epochs=3, verbose=0, random_state=0, n_threads=1),
        VQVAEDetector(epochs=3, verbose=0, random_state=0, n_threads=1),
        GaussianDetector(),
        PCADetector(),
        OneClassSVMDetector(),
        IsolationForestDetector(n_estimators=20, random_state=0),
        KNNDetector(),
        LOFDetector(),
        EnsembleDetector(members=("knn", "iforest", "autoencoder", "gaussian"), random_state=0),
    ],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_estimator_contract(estimator, check):
    check(estimator)
