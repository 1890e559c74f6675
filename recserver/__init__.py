"""recserver: real-time graph recommendations inside a per-request latency budget."""

__version__ = "0.1.0"
