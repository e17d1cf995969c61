"""Where telemetry leaves the process: exporters, sinks, spool."""
