"""How telemetry gets there and survives: health counting, the job-end deadline, the spool
and its sender, the direct sender, encoding, self-metrics."""
