"""Per-call features: Langfuse mapping, content rules, reports, logs."""
