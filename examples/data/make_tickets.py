"""Write ``tickets.csv``: support tickets of the kind real tables hold (run from the repo root).

Text columns, numbers and a boolean, gaps in several of them, and an imbalanced three-class target
(about 60% low, 30% medium, 10% high priority). ``python examples/data/make_tickets.py``.
"""

from pathlib import Path

import numpy as np
import pandas as pd

ROWS = 800


def tickets(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """The table, with a priority that follows tier, channel, product and history, plus noise."""
    rng = np.random.default_rng(seed)
    tier = rng.choice(["free", "pro", "enterprise"], rows, p=[0.6, 0.3, 0.1])
    channel = rng.choice(["email", "chat", "phone"], rows, p=[0.5, 0.35, 0.15])
    product = rng.choice(["billing", "api", "dashboard", "mobile"], rows)
    age = rng.gamma(2.0, 200.0, rows).round(1)
    previous = rng.poisson(2.0, rows).astype(float)
    business_hours = rng.uniform(size=rows) < 0.7
    words = rng.integers(5, 400, rows)
    score = (
        np.select([tier == "enterprise", tier == "pro"], [2.0, 1.0], 0.0)
        + np.where(channel == "phone", 1.2, 0.0)
        + np.where(product == "api", 0.8, 0.0)
        + 0.25 * previous
        - 0.001 * age
        + np.where(business_hours, 0.0, 0.5)
        + rng.normal(scale=0.6, size=rows)
    )
    priority = np.select([score > 3.0, score > 1.6], ["high", "medium"], "low")
    frame = pd.DataFrame(
        {
            "channel": channel,
            "tier": tier,
            "product": product,
            "account_age_days": age,
            "previous_tickets": previous,
            "business_hours": business_hours,
            "message_words": words,
            "priority": priority,
        }
    ).astype({"channel": object, "product": object, "business_hours": object})
    for column, share in [
        ("channel", 0.03),
        ("product", 0.05),
        ("account_age_days", 0.08),
        ("previous_tickets", 0.05),
        ("business_hours", 0.02),
    ]:
        frame.loc[rng.uniform(size=rows) < share, column] = np.nan
    return frame


if __name__ == "__main__":
    tickets().to_csv(Path(__file__).parent / "tickets.csv", index=False)
