"""Where telemetry goes: the backends, their headers and transport, the identity a
destination sees."""
