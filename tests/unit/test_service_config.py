"""The service's settings as BentoML and the routes see them, read from its environment.

BentoML 1.4 keeps each request's timer, and with it the request's tracing context (about 5 KB),
until its traffic timeout expires, so the memory a service holds is that timeout times the request
rate: at the 300 s it once had, 9,000 requests held 45 MB (measured with a real service; `make
bench`'s memory section soaks a service and reports whether its RSS stays flat). The backstop is
the request timeout plus a few seconds, so what a request leaves behind is released within it.
"""

from __future__ import annotations

import os

import pytest

from serving.config import ServingConfig
from serving.feedback_intake import LabelRate
from serving.http.auth import OPEN, ApiKeys, KeyConfigError, digest, key_id
from serving.http.errors import ApiError
from serving.service import BACKSTOP_SECONDS, ModelService
from serving.store.ids import MAX_RECORDS


def test_bentomls_backstop_follows_the_request_timeout_not_minutes():
    assert "MLSERVE_REQUEST_TIMEOUT" not in os.environ  # the default: 30 s
    assert ModelService.config["traffic"]["timeout"] == 30 + BACKSTOP_SECONDS
    assert BACKSTOP_SECONDS <= 10


def test_the_configuration_is_read_from_the_environment_it_is_given(monkeypatch):
    monkeypatch.setenv("MLSERVE_MODEL", "m")
    monkeypatch.setenv("MLSERVE_MAX_RECORDS", "7")
    monkeypatch.setenv("MLSERVE_REQUEST_TIMEOUT", "2.5")
    monkeypatch.setenv("MLSERVE_OPEN_SCOPES", "")
    monkeypatch.setenv("MLSERVE_API_KEYS", "feedback:a-key-of-16-chars")
    config = ServingConfig.from_env()
    assert (config.model_name, config.max_records, config.request_timeout) == ("m", 7, 2.5)
    assert config.keys.allows("feedback", "a-key-of-16-chars") is True
    assert config.keys.allows("predict", "a-key-of-16-chars") is False
    assert config.keys.allows("predict", None) is None


def test_a_request_may_hold_no_more_records_than_its_ids_can_number(monkeypatch):
    monkeypatch.setenv("MLSERVE_MAX_RECORDS", str(MAX_RECORDS))
    assert ServingConfig.from_env().max_records == MAX_RECORDS
    for beyond in (MAX_RECORDS + 1, 0):
        monkeypatch.setenv("MLSERVE_MAX_RECORDS", str(beyond))
        with pytest.raises(ValueError, match="MLSERVE_MAX_RECORDS must be 1 to 65536"):
            ServingConfig.from_env()


def test_a_bad_key_entry_is_refused_without_echoing_it_and_short_keys_are_refused():
    bare = "a-bare-key-with-no-scopes-0123"
    with pytest.raises(KeyConfigError) as refused:
        ApiKeys.parse(f"predict:fine-key-0123456789\n{bare}", "")
    assert "entry 2" in str(refused.value) and bare not in str(refused.value)
    with pytest.raises(KeyConfigError, match="at least 16 characters"):
        ApiKeys.parse("feedback:short-key", "")
    assert ApiKeys.parse("feedback:" + "k" * 16, "").allows("feedback", "k" * 16)


def test_labels_are_sent_by_a_known_key_or_by_open_and_the_rate_is_per_key():
    keys = ApiKeys.parse(f"feedback:{'a' * 16}\nfeedback:{'b' * 16}", "feedback")
    assert keys.sender("a" * 16) == key_id("a" * 16) == digest("a" * 16)[:12]
    assert keys.sender("an-unknown-key-xyz") == keys.sender(None) == OPEN
    rate = LabelRate(per_minute=60)
    rate.take(keys.sender("a" * 16), 60)  # a whole minute's labels at once
    with pytest.raises(ApiError) as slowed:
        rate.take(keys.sender("a" * 16), 2)
    assert slowed.value.status == 429 and 1 <= int(slowed.value.headers["Retry-After"]) <= 2
    rate.take(keys.sender("b" * 16), 60)  # another key has its own minute
    with pytest.raises(ApiError) as never:
        rate.take(OPEN, 61)
    assert "send smaller batches" in never.value.errors[0]["problem"]


def test_on_the_default_configuration_feedback_and_admin_need_a_key(monkeypatch):
    for name in ("MLSERVE_OPEN_SCOPES", "MLSERVE_API_KEYS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLSERVE_API_KEYS", "feedback,admin:" + "k" * 16)
    keys = ServingConfig.from_env().keys
    assert keys.allows("predict", None) is True  # open by default, and the service warns so
    assert keys.allows("feedback", None) is None and keys.allows("admin", None) is None  # 401
