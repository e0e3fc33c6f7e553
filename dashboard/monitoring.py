"""What the System page reads outside PostgreSQL: Triton's model repository and the gRPC
server's Prometheus counters."""

from __future__ import annotations

import math
import urllib.request
from collections import defaultdict

import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

from dashboard.queries.system import quantile

TIMEOUT_S = 2.0


def triton_models(url: str) -> tuple[bool, pd.DataFrame]:
    """Whether Triton at ``url`` (gRPC host:port) is ready, and its models: name, version,
    state, reason. Raises on an unreachable server."""
    import tritonclient.grpc as triton  # heavy import: only for this page

    client = triton.InferenceServerClient(url)
    try:
        ready = bool(client.is_server_ready(client_timeout=TIMEOUT_S))
        index = client.get_model_repository_index(as_json=True, client_timeout=TIMEOUT_S)
    finally:
        client.close()
    models = [
        {
            "model": model.get("name", ""),
            "version": model.get("version", ""),
            "state": model.get("state", ""),
            "reason": model.get("reason", ""),
        }
        for model in index.get("models", [])
    ]
    return ready, pd.DataFrame(models, columns=["model", "version", "state", "reason"])


def grpc_methods(metrics_url: str) -> pd.DataFrame:
    """Per gRPC method since the server started: requests, errors (any status but OK),
    error rate and latency p50/p99 (ms, from the histogram)."""
    with urllib.request.urlopen(metrics_url, timeout=TIMEOUT_S) as response:
        text = response.read().decode()
    requests: dict[str, float] = defaultdict(float)
    errors: dict[str, float] = defaultdict(float)
    buckets: dict[str, dict[float, float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            method = sample.labels.get("method", "")
            if sample.name == "recsys_grpc_requests_total":
                requests[method] += sample.value
                if sample.labels.get("code") != "OK":
                    errors[method] += sample.value
            elif sample.name == "recsys_grpc_request_seconds_bucket":
                buckets[method][float(sample.labels["le"])] = sample.value
    rows = []
    for method in sorted(requests):
        bounds = sorted(buckets[method])
        cumulative = [buckets[method][b] for b in bounds]
        counts = [int(c - p) for c, p in zip(cumulative, [0.0, *cumulative[:-1]], strict=True)]
        bounds_ms = [b * 1000 if not math.isinf(b) else b for b in bounds]
        p50, p99 = (quantile(bounds_ms, counts, q) for q in (0.5, 0.99))
        rows.append(
            {
                "method": method,
                "requests": int(requests[method]),
                "errors": int(errors[method]),
                "error rate": errors[method] / requests[method] if requests[method] else 0.0,
                "p50 ms": p50,
                "p99 ms": p99,
            }
        )
    columns = ["method", "requests", "errors", "error rate", "p50 ms", "p99 ms"]
    return pd.DataFrame(rows, columns=columns)
