"""The alerts that fire now, as Alertmanager has them: what baking rolls a new champion back on.

Error rates and latency are the service's to measure and Prometheus's to judge (its rules in
``infra/prometheus/alerts.yml``); baking asks Alertmanager which of them fire, as SageMaker's
deployment guardrails ask CloudWatch. Without an Alertmanager (``MLSERVE_ALERTMANAGER_URL`` unset,
as on the embedded default) none is asked and baking judges on the live metric alone.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import dagster as dg
import httpx


@dataclass(frozen=True)
class FiringAlert:
    """One alert firing at Alertmanager."""

    name: str
    since: float
    labels: dict[str, str]
    summary: str


class AlertmanagerResource(dg.ConfigurableResource):
    """Alertmanager's v2 API at ``url`` (None: no Alertmanager, nothing fires)."""

    url: str | None = None

    def firing(self, names: Collection[str], model: str, since: float) -> list[FiringAlert]:
        """Alerts among ``names`` about ``model`` (or the whole service) that began after ``since``.

        Silenced and inhibited alerts are left out: someone decided they need no action. Raises
        ``httpx.HTTPError`` when Alertmanager cannot be asked.
        """
        if self.url is None or not names:
            return []
        answer = httpx.get(
            f"{self.url.rstrip('/')}/api/v2/alerts",
            params={"active": "true", "silenced": "false", "inhibited": "false"},
            timeout=5,
        )
        answer.raise_for_status()
        found = []
        for alert in answer.json():
            labels = alert["labels"]
            began = datetime.fromisoformat(alert["startsAt"]).timestamp()
            if (
                labels.get("alertname") in names
                and labels.get("model", model) == model
                and began >= since
            ):
                summary = alert.get("annotations", {}).get("summary", "")
                found.append(FiringAlert(labels["alertname"], began, labels, summary))
        return found
