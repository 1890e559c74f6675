"""The open-loop gRPC load generator (``python -m load.loadgen``) and the door's closed-loop
callers and wire-latency reader that ``load.benchmarks.door`` drives."""
