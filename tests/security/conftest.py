"""The attack catalog's fixtures (defined in :mod:`catalog`)."""

from catalog import authz, idp_a, idp_b, issuers, keys

__all__ = ["authz", "idp_a", "idp_b", "issuers", "keys"]
