"""The loop follows a real table's seasons with default settings (``harness.seasons``).

Seattle's daily weather (``vega_datasets``, MIT; NOAA's data, public domain; shipped in the
wheel): a spec scaffolded as ``mlserve init`` does from winter alone, twenty-one months served in
time order with labels a month late, the real daemon retraining on its own. Judged on the two
years after the traffic, against a model trained on all the history (fitted independently).

The bound is 15%, not the 5% the loop aims at: which labels gate and which train is a hash of
random prediction ids, and how many labels the last retraining saw depends on when its run
started. Five runs here ended 0.9-6.5% behind; the same retraining offline over six draws of
ids was 2.8-6.9% behind at 518 labels and, in one draw at 460, 14% (a forest chosen on the labels
alone). Paced at a month every 8 s (``python -m harness.seasons``), three runs ended 2.7%, 5.4%
and 42% behind: in the last the gate held the fourth version for lack of evidence and too few
labels followed for a fifth. The figures are recorded (``record_property``) in every run.
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
