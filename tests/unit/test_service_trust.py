"""The service serves only what mlserve vetted: recorded moves, skops files it trusts, models
that predict. In process, with a real SQLite registry and log and the service's own poll thread.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable

import prometheus_client
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from harness.hostile import Payload, Tripwire, forged_version, pickled, replaced
from harness.inprocess import PREDICT_KEY, Served, bearer
from harness.registries import promote_new_version, register_new_version
from serving.model.artifact import RefusedModel, load_estimator, trusted_types
from serving.registry import move_alias
from tests.unit.conftest import DATA, ROWS, fitted


def _answers(served: Served) -> set[str]:
    """The versions that answer five records (each answer must be a 200)."""
    body = {"records": ROWS.iloc[:5].to_dict("records")}
    answer = served.client.post("/predict", json=body, headers=bearer(PREDICT_KEY))
    assert answer.status_code == 200, answer.text
    return {p["model_version"] for p in answer.json()["predictions"]}


def _vetted_move(served: Served, version: str) -> None:
    """A move as ``mlserve promote`` makes one: recorded."""
    move_alias(served.registry.client, served.log.store, "bc", version, by="test", reason="t")


def _eventually(check: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the service did not get there"
        time.sleep(0.05)


def _refusals(reason: str) -> float:
    labels = {"model": "bc", "reason": reason}
    return (
        prometheus_client.REGISTRY.get_sample_value("mlserve_champion_refused_total", labels) or 0
    )


def test_a_move_made_around_mlserve_is_not_served_and_a_recorded_one_is(served):
    before = served.version()
    constant = DummyClassifier(strategy="constant", constant=0).fit(ROWS, DATA.target)
    version = register_new_version(served.registry, "bc", constant, ROWS)
    refused = _refusals("unrecorded")

    served.registry.client.set_registered_model_alias("bc", "champion", version)
    time.sleep(1)  # five polls
    answer = served.reload()
    assert answer["changed"] is False and "moved around mlserve" in answer["refused"]
    assert served.version() == before and _answers(served) == {before}
    assert _refusals("unrecorded") == refused + 1  # once, however many polls saw it
    gauge = prometheus_client.REGISTRY.get_sample_value(
        "mlserve_champion_alias_refused", {"model": "bc"}
    )
    assert gauge == 1

    _vetted_move(served, version)
    _eventually(lambda: served.version() == version)
    assert served.reload()["refused"] is None


def test_a_version_stored_as_pickle_is_refused_and_its_payload_never_runs(served, tmp_path):
    before, marker = served.version(), tmp_path / "pickle-ran"
    version, _ = forged_version(
        served.registry.client, "bc", before, tmp_path / "forged", pickled(marker)
    )
    refused = _refusals("unsafe")
    _vetted_move(served, version)  # recorded: what is in the files is checked on its own
    time.sleep(1)
    answer = served.reload()

    assert "never pickle" in answer["refused"]
    assert not marker.exists()
    assert served.version() == before and _answers(served) == {before}
    assert _refusals("unsafe") == refused + 1
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Payload(control)))
    assert control.exists()  # the payload does run when unpickled


def test_a_version_asking_for_an_untrusted_type_is_refused_before_it_is_built(served, tmp_path):
    before, marker = served.version(), tmp_path / "tripwire-ran"
    change = replaced(Tripwire(str(marker)))
    version, model_dir = forged_version(
        served.registry.client, "bc", before, tmp_path / "forged", change
    )
    _vetted_move(served, version)
    time.sleep(1)
    answer = served.reload()

    assert "does not trust: harness.hostile.Tripwire" in answer["refused"]
    assert not marker.exists()
    assert served.version() == before and _answers(served) == {before}
    with pytest.raises(RefusedModel):  # the training side's loader refuses it the same way
        served.registry.load("bc", version, trusted_types())
    assert not marker.exists()
    # Trusted, the same file is built, and the tripwire goes off: the check above is what held.
    load_estimator(model_dir, trusted_types(["harness.hostile.Tripwire"]))
    assert marker.exists()


def test_a_version_that_cannot_predict_is_refused_and_the_poll_follows_the_next_good_move(
    served, tmp_path
):
    before = served.version()
    narrow = LogisticRegression().fit(ROWS.iloc[:, :3].to_numpy(), DATA.target)
    version, _ = forged_version(
        served.registry.client, "bc", before, tmp_path / "forged", replaced(narrow)
    )
    _vetted_move(served, version)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:  # polls come and go: every answer a 200 from the old
        assert _answers(served) == {before}
    assert "cannot predict its own input example" in served.reload()["refused"]

    good = fitted(0.5)
    fixed = promote_new_version(served.registry, served.log, "bc", good, ROWS)
    _eventually(lambda: _answers(served) == {fixed})  # by the poll thread, no reload
    assert served.reload()["refused"] is None
