"""authz-server: an Envoy ext_authz service that verifies JWTs and evaluates Istio
RequestAuthentication and AuthorizationPolicy resources, loaded unchanged."""

__version__ = "0.1.0"
