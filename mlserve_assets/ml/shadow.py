"""Promotion on shadow evidence: the challenger beats what answered on the same labelled requests.

Baking's arithmetic the other way round (``ml.bake``): judged at milestones of labelled requests,
each look spending ``(1 - confidence) / looks`` of one-sided error, the challenger is promoted
when even the pessimistic end of its improvement clears ``gate.min_improvement`` and its score
meets ``gate.threshold``. The labels are the gate's evidence, bounded as the gate bounds it: an
untrusted API key carrying more than ``gate.source_share`` of them promotes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from mlserve_assets.ml.bake import looks, paired_look
from mlserve_assets.ml.metrics import Metric
from mlserve_assets.spec.models import Gate
from mlserve_assets.spec.watching import Shadow


@dataclass(frozen=True)
class ShadowVerdict:
    """Promote or not, why, and the figures (recorded with the move)."""

    promote: bool
    reason: str
    evidence: dict[str, object]


def judge(
    metric: Metric,
    gate: Gate,
    rules: Shadow,
    truth: np.ndarray,
    challenger: np.ndarray,
    served: np.ndarray,
    senders: list[str],
    trusted: Collection[str],
    version: str,
) -> ShadowVerdict:
    """Whether the challenger (``challenger``'s answers) beat the ``served`` answers, surely."""
    alpha = (1 - rules.confidence) / looks(rules.min_labels, rules.max_labels)
    names = (f"v{version}", "served")
    bound, evidence = paired_look(metric, truth, challenger, served, alpha, names, False)
    ours, theirs = evidence[f"v{version}_{metric.name}"], evidence[f"served_{metric.name}"]
    figures = (
        f"{metric.name} {ours:.4f} against {theirs:.4f} served on the same {len(truth)} labelled "
        f"requests (improvement at least {bound:+.4f})"
    )
    shares = Counter(senders)
    loud = [k for k, n in shares.items() if k not in trusted and n > gate.source_share * len(truth)]
    if loud:
        why = f"key {loud[0]} sent {shares[loud[0]]} of the {len(truth)} labels, more than "
        why += f"source_share {gate.source_share} (trust it in gate.trusted_sources)"
        return ShadowVerdict(False, f"v{version} not promoted: {why}; {figures}", evidence)
    if bound <= gate.min_improvement:
        return ShadowVerdict(False, f"v{version} not surely better: {figures}", evidence)
    if not metric.meets(ours, gate.threshold):
        reason = f"v{version} misses threshold {gate.threshold}: {figures}"
        return ShadowVerdict(False, reason, evidence)
    return ShadowVerdict(True, f"v{version} proved better in shadow: {figures}", evidence)
