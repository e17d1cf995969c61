"""Sinks in this process or on this machine: the Prometheus endpoint and multiprocess
files, the OTLP/JSON file."""
