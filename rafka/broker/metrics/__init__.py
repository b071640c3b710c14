"""Prometheus metrics (rafka.metrics.port): hot-path counters in `counters` (no prometheus_client,
cheap enough for the request path), scrape-time collectors and the HTTP endpoint in the others,
imported only when metrics are enabled. Nothing is imported here: the request path imports
`counters` alone."""
