"""The stack's monitoring as real processes: Prometheus and Alertmanager on this repository's files.

Pointed at a service and a webhook receiver on this host, with intervals of a second instead of
the stack's tens of seconds; what each rule and route says is unchanged.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from harness.servers import free_port, managed_process
from mlserve_assets.settings import PROJECT_ROOT

INFRA = PROJECT_ROOT / "infra"


class Webhook:
    """An HTTP receiver of Alertmanager's webhook: every alert it was sent, as JSON."""

    def __init__(self) -> None:
        self.alerts: list[dict] = []
        received = self.alerts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.extend(json.loads(body)["alerts"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                """Quiet: the test reads what arrived."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/alerts"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop receiving."""
        self._server.shutdown()
        self._server.server_close()

    def firing(self, name: str) -> list[dict]:
        """The firing alerts named ``name`` received so far."""
        return [
            a for a in self.alerts if a["labels"]["alertname"] == name and a["status"] == "firing"
        ]


@contextmanager
def alertmanager(folder: Path, webhook: Webhook) -> Iterator[str]:
    """Alertmanager on the stack's routes, sending to ``webhook``; yields its URL."""
    port = free_port()
    config = folder / "alertmanager"
    config.mkdir(parents=True)
    routes = (INFRA / "alertmanager/alertmanager.yml").read_text()
    for stack, here in (
        ("http://alert-webhook:9095/alerts", webhook.url),
        ("group_wait: 30s", "group_wait: 1s"),
        ("group_interval: 5m", "group_interval: 1s"),
    ):
        assert stack in routes, stack
        routes = routes.replace(stack, here)
    (config / "alertmanager.yml").write_text(routes)
    command = [
        "prometheus-alertmanager",
        f"--config.file={config / 'alertmanager.yml'}",
        f"--storage.path={config / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # one instance: no gossip port
    ]
    url = f"http://127.0.0.1:{port}"
    with managed_process(command, {}, folder / "alertmanager.log", f"{url}/-/ready"):
        yield url


@contextmanager
def monitoring(folder: Path, service: str) -> Iterator[tuple[str, Webhook]]:
    """Prometheus scraping ``service`` (host:port), alerting through Alertmanager to a webhook.

    Yields Prometheus's URL and the webhook receiver.
    """
    prom_port = free_port()
    webhook = Webhook()
    config = folder / "monitoring"
    config.mkdir(parents=True)
    try:
        with alertmanager(folder, webhook) as am_url:
            prometheus = (INFRA / "prometheus/prometheus.yml").read_text()
            for stack, here in (
                ('"serving-1:3000", "serving-2:3000", "serving-3:3000"', f'"{service}"'),
                ("alertmanager:9093", am_url.removeprefix("http://")),
                ("localhost:9090", f"127.0.0.1:{prom_port}"),
                ("scrape_interval: 10s", "scrape_interval: 1s"),
                ("evaluation_interval: 30s", "evaluation_interval: 1s"),
            ):
                assert stack in prometheus, stack  # the stack's file still says what this rewrites
                prometheus = prometheus.replace(stack, here)
            (config / "prometheus.yml").write_text(prometheus)
            (config / "alerts.yml").write_text((INFRA / "prometheus/alerts.yml").read_text())
            server = [
                "prometheus",
                f"--config.file={config / 'prometheus.yml'}",
                f"--storage.tsdb.path={config / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ]
            ready = f"http://127.0.0.1:{prom_port}/-/ready"
            with managed_process(server, {}, folder / "prometheus.log", ready):
                yield f"http://127.0.0.1:{prom_port}", webhook
    finally:
        webhook.close()
