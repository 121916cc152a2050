"""Real parts for the demo and the tests: an echo upstream, a JWKS server, Envoy.

Nothing here is imported by the request path; ``python -m authz_server.demo``
wires these parts together (see ``run.py``), and ``tests/harness.py`` reuses them.
"""
