"""Reads: the rollup engine (`reader`), dashboard panel data (`dashboard`), system and HTTP
statistics (`system`) and Prometheus as a source (`promql`). Every read takes a scope."""
