"""The loop follows a real table's seasons with default settings (``harness.seasons``).

Seattle's daily weather (``vega_datasets``, MIT; NOAA's data, public domain; shipped in the
wheel): a spec scaffolded as ``mlserve init`` does from winter alone, twenty-one months served in
time order with labels a month late, the real daemon retraining on its own. Judged on the two
years after the traffic, against a model trained on all the history (fitted independently).

The bound is 15%, not the 5% the loop aims at. Which labels gate and which train is a hash of
random prediction ids, and the choice between ridge and the forest follows it: trained on all
610 labels, the retraining's own functions (offline, sixteen draws of ids) chose ridge ten times,
0.2-1.6% behind, and the forest six times, 2.0-5.0% behind. Since the labels left below
the threshold at the end of the traffic train once quiet (``retrain.quiet_seconds``), five runs
here ended 5.3%, 2.9%, 0.8%, 5.3% and 0.4% behind, and since init's regression bar is r2 (an rmse
bar from winter's spread held every summer model at a month every 8 s: 47% behind), 1.9% and
0.5% (before both: 0.9-6.5%, and 42% once at a month every 8 s). The figures are recorded
(``record_property``) in every run.
"""

from __future__ import annotations

from harness.seasons import run

WITHIN = 1.15


def test_the_loop_follows_a_real_seasonal_drift_close_to_a_model_of_all_the_history(
    tmp_path, record_property
):
    seasons = run(tmp_path)
    record_property(
        "rmse_first_served_all_history",
        f"{seasons.first:.3f} {seasons.served:.3f} {seasons.all_history:.3f}",
    )
    record_property("seconds_threshold_to_new_answer", seasons.seconds_to_new_answer)
    record_property("versions", seasons.versions)
    assert seasons.split_by == "date"  # init proposed the time split
    assert "date" not in seasons.features  # the split's column, not a feature
    assert seasons.first > 1.2 * seasons.all_history, "the first model is not behind: no drift"
    assert seasons.champion != "1", (seasons.versions, seasons.decisions)
    assert seasons.served <= WITHIN * seasons.all_history, seasons
