"""Authorization: Istio AuthorizationPolicy compiled into matchers and evaluated."""
