"""Scoring a Dask DataFrame with a saved oddkit model (``pip install oddkit[dask]``).

:func:`score` adds ``score`` (float64), ``label`` (int32, 1 = anomaly) and ``unseen_category`` (bool)
columns with ``DataFrame.map_partitions``. Each worker process loads the model folder once, verifying its
checksums (and its signature, with a key) there, and keeps it for later partitions; the scores equal
``decision_function`` on the same rows, bit for bit. A row holding a category never seen in training is
scored as an anomaly and flagged in ``unseen_category`` (``ddf["unseen_category"].sum()`` counts them), as
``oddkit score`` does; ``strict_categories=True`` fails the computation on it instead.

The folder is read by path on every worker: on a ``LocalCluster`` any local path; on a distributed
cluster a path every worker mounts (NFS, a shared volume). With ``key=`` (or ``ODDKIT_MODEL_KEY`` set
where :func:`score` is called) the key travels to the workers inside the task graph: use TLS between
client, scheduler and workers on a real cluster.

    from dask.distributed import Client
    import dask.dataframe as dd
    import oddkit.dask

    client = Client("tcp://scheduler:8786")
    rows = dd.read_parquet("s3://bucket/transactions/2026-12-04/")
    oddkit.dask.score(rows, "/mnt/models/fraud").to_parquet("s3://bucket/scores/2026-12-04/")
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from oddkit.exceptions import DataError, MissingDependencyError


def _score_partition(frame, *, folder: str, key: bytes | None, features: list[str], strict_categories: bool = False):
    from oddkit.spark import _load_verified, score_frame

    detector = _load_verified(folder, key) if len(frame) else None
    return score_frame(detector, frame, features, strict_categories)


def score(ddf, model_folder, *, key: bytes | str | None = None, features: Sequence[str] | None = None,
          strict_categories: bool = False):
    """Score a Dask DataFrame with a saved model: the DataFrame with ``score``, ``label`` and
    ``unseen_category`` added.

    Lazy like any Dask operation: rows are scored on ``compute``, ``persist`` or a write.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
        Rows to score; it must hold the model's feature columns (by name). Every other column (ids,
        labels, timestamps) is not scored but carried through to the result unchanged, beside the
        scores (where ``detector.decision_function`` refuses columns it was not fitted on).
    model_folder : str or Path
        A model folder written by ``detector.save`` or ``oddkit fit``, at a path every worker can read.
        It is loaded here first, so a damaged folder, a wrong key or a missing column fails at once.
    key : bytes or str, optional
        The signing key: the folder is refused, here and on every worker, unless signed with it.
        Default: ``ODDKIT_MODEL_KEY`` when set.
    features : sequence of str, optional
        The feature columns, for a model fitted without column names. Default: the model's
        ``feature_names_in_``, or else every column. For a model trained on texts, the one column
        holding them (default: the column the model learned from, ``"text"`` when it learned from a list).
    strict_categories : bool, default=False
        Fail the computation (:class:`UnseenCategoryError`) on a category never seen in training,
        instead of scoring its row as an anomaly and flagging it.

    Returns
    -------
    dask.dataframe.DataFrame
        The input columns, then ``score`` (float64), ``label`` (int32) and ``unseen_category`` (bool:
        the row holds a category never seen in training; its score is then at least
        ``detector.out_of_range_score()``, as :func:`oddkit.scoring.score_rows` gives it).

    Raises
    ------
    MissingDependencyError
        When dask is not installed.
    ModelFileError
        When the folder fails its integrity check or signature.
    ColumnMismatchError
        When ``ddf`` lacks one of the model's feature columns, or (a model fitted without column names,
        ``features`` not given) has another number of columns than the model was fitted on.
    DataError
        When ``ddf`` already has a ``score``, ``label`` or ``unseen_category`` column, or the model was
        trained on images or recordings.
    """
    try:
        import dask.dataframe  # noqa: F401
    except ImportError:
        raise MissingDependencyError("scoring on Dask needs dask; install it with: pip install 'oddkit[dask]'") from None
    import numpy as np

    from oddkit.persist import load
    from oddkit.spark import OUTPUT_COLUMNS, _feature_columns, _key, check_scorable

    folder = Path(model_folder).expanduser().resolve()
    key = _key(key)
    detector = load(folder, key=key)
    check_scorable(detector, folder, "oddkit.dask")
    columns = list(ddf.columns)
    clash = [c for c in OUTPUT_COLUMNS if c in columns]
    if clash:
        raise DataError(f"the DataFrame already has a column named {clash[0]!r}; rename or drop it before scoring")
    features = _feature_columns(detector, columns, features)
    meta = ddf._meta.assign(score=np.empty(0, np.float64), label=np.empty(0, np.int32),
                            unseen_category=np.empty(0, bool))
    return ddf.map_partitions(_score_partition, folder=str(folder), key=key, features=features,
                              strict_categories=bool(strict_categories), meta=meta)
