"""Where telemetry leaves the process, by concern: ``destinations`` (where it goes),
``delivery`` (how it survives), ``local`` (sinks on this machine)."""
