"""Surrogates: mixture (+ fidelity) -> predicted loss, one estimator contract."""
