"""iNNE (Bandaragoda et al. 2018) as a member of the default tabular ensemble: is it worth adding?

Issue 22 names iNNE (isolation using nearest-neighbour ensembles: hyperspheres around small random
subsamples, reported to resist clustered anomalies) among ideas for the default's margin. This script
measures PyOD's ``pyod.models.inne.INNE`` (its defaults, ``random_state`` = seed) as the member
``inne`` of ``tabular_search.py``'s cache machinery, on the same splits, halves and PyOD targets as
TABULAR_SEARCH.md.

Decision rule, written and committed before any iNNE result existed
------------------------------------------------------------------
Margins are mean AUROC (over datasets, each the mean over seeds 0-2) minus the best single PyOD
detector on the same half and protocol (``tabular_search.peer_means``); the *worst margin* is the
worse of the clean and contaminated margins.

0. Check: the shipped default (knn1, sknn1-16, gauss-robust-t25; max), recomputed from this run's
   cache, must give TABULAR_SEARCH.md's selection figures (0.833 clean, 0.791 contaminated, to three
   decimals). If not, stop and report the mismatch; no verdict.
1. iNNE is worth adding to the default only if, on the selection half, ``shipped default + inne
   (max)`` raises the shipped default's worst margin by at least 0.005 without lowering either
   protocol's mean AUROC by more than 0.002. ``knn1 + inne + gauss-robust-t25 (max)`` (iNNE in place
   of the subsampled neighbour) is judged by the same rule against the shipped default, separately.
2. Only an ensemble that passes on the selection half is fitted on the confirmation half, and the
   same must hold there (against the confirmation half's own PyOD targets) for the verdict "worth
   adding". An ensemble that fails on the selection half is "not worth adding", whatever else.
3. If time allows, the confirmation half may be fitted anyway; those figures are labelled "read
   after the verdict" and cannot change it.
4. Time (fit + score seconds of ``inne`` against ``knn1`` on the same jobs) is reported, not part of
   the rule.
"""
