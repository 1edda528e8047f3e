"""GET /metrics: the Prometheus exposition (the dashboard's figures from the database are in dashboard/)."""

from __future__ import annotations

import os

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

router = APIRouter(tags=["metrics"])


def _registry() -> CollectorRegistry:
    # With several worker processes each keeps its own figures; prometheus_client merges them
    # from PROMETHEUS_MULTIPROC_DIR when that is set (see docs/metrics.md).
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics() -> Response:
    """Prometheus text exposition of every metric in conversation_api.metrics.instruments."""
    return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)
