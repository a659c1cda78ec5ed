"""The loop follows a real table's seasons with default settings (``harness.seasons``).

Seattle's daily weather (``vega_datasets``, MIT; NOAA's data, public domain; shipped in the
wheel): a spec scaffolded as ``mlserve init`` does from winter alone, twenty-one months served in
time order with labels a month late, the real daemon retraining on its own. Judged on the two
years after the traffic, against a model trained on all the history (fitted independently).

The bound is 15%, not the 5% the loop aims at. At a month a second the first retraining reads the
labels of 456-609 of the 610 days, by when its run reads them; the labels after it train a last
version once they stop (``retrain.quiet_seconds``). Offline, with the retraining's own functions and
24 draws of ids: trained at 518 labels the first is 2.0-8.2% behind, the last 0.1-4.9% behind (2.1%
but for one forest). Whether the last serves is the gate's call, on the ~25 gate labels since the
first's training, too few to prove a small gain: held in 5 of 24 draws at 518 labels. At 548 labels
those are one or two winter months, where r2 (against that window's own mean) was below init's 0.01
bar for both models in 9 of 10 draws; since the gate reads its bar against a constant answer there
(``ml.gate.decide``) the last passes it where it is surely better than the labels' mean, 2 of 12
draws (the served model 0.8-9.2% behind, one draw past 5%, a forest chosen first). Runs here: 5.3,
2.9, 0.8, 5.3, 0.4, 1.9, 0.5%; on 2026-12-05 4.4, 3.0, 0.8%, then with the constant answer 1.0, 1.9,
0.6% (the last one promoted twice). The figures are recorded (``record_property``) in every run.
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
