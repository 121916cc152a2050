"""``make bench``: throughput, fixed-rate latency, CPU and memory of authz-server.

Run ``python -m bench.run --help``; ``bench/README.md`` explains every figure.
"""
