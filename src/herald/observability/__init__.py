"""What Herald tells its operators: Prometheus metrics (``metrics``) and structured logs (``logs``).

A leaf package: it imports nothing else of Herald, so every layer may record a metric or bind log context.
``docs/observability.md`` lists the metrics and the log fields.
"""
