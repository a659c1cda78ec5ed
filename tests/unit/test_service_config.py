"""The service's settings as BentoML and the routes see them, read from its environment.

BentoML 1.4 keeps each request's timer, and with it the request's tracing context (about 5 KB),
until its traffic timeout expires, so the memory a service holds is that timeout times the request
rate: at the 300 s it once had, 9,000 requests held 45 MB (measured with a real service; `make
bench`'s memory section soaks a service and reports whether its RSS stays flat). The backstop is
the request timeout plus a few seconds, so what a request leaves behind is released within it.
"""

from __future__ import annotations

import os

from serving.config import ServingConfig
from serving.service import BACKSTOP_SECONDS, ModelService


def test_bentomls_backstop_follows_the_request_timeout_not_minutes():
    assert "MLSERVE_REQUEST_TIMEOUT" not in os.environ  # the default: 30 s
    assert ModelService.config["traffic"]["timeout"] == 30 + BACKSTOP_SECONDS
    assert BACKSTOP_SECONDS <= 10


def test_the_configuration_is_read_from_the_environment_it_is_given(monkeypatch):
    monkeypatch.setenv("MLSERVE_MODEL", "m")
    monkeypatch.setenv("MLSERVE_MAX_RECORDS", "7")
    monkeypatch.setenv("MLSERVE_REQUEST_TIMEOUT", "2.5")
    monkeypatch.setenv("MLSERVE_OPEN_SCOPES", "")
    monkeypatch.setenv("MLSERVE_API_KEYS", "feedback:k")
    config = ServingConfig.from_env()
    assert (config.model_name, config.max_records, config.request_timeout) == ("m", 7, 2.5)
    assert config.keys.allows("feedback", "k") is True
    assert config.keys.allows("predict", "k") is False
    assert config.keys.allows("predict", None) is None
