"""Optional fused ops for the proxies, each with a plain-PyTorch reference beside it.

>>> from mixopt.kernels import moe_experts, use_impl
"""

from mixopt.kernels.moe_experts import IMPLS, available_impls, eligible, moe_experts, resolve_impl, use_impl

__all__ = ["IMPLS", "available_impls", "eligible", "moe_experts", "resolve_impl", "use_impl"]
