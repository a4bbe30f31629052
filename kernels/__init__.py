"""Optional fused ops for the proxies, each with a plain-PyTorch reference beside it.

>>> from mixopt.kernels import linear, linear_cross_entropy, moe_experts, use_impl
"""

from mixopt.kernels.linear import LINEAR_IMPLS, linear, matmul_nt, resolve_linear_impl
from mixopt.kernels.linear_cross_entropy import LCE_IMPLS, linear_cross_entropy, resolve_lce_impl
from mixopt.kernels.moe_experts import IMPLS, available_impls, eligible, moe_experts, resolve_impl, use_impl

__all__ = ["IMPLS", "LCE_IMPLS", "LINEAR_IMPLS", "available_impls", "eligible", "linear", "linear_cross_entropy",
           "matmul_nt", "moe_experts", "resolve_impl", "resolve_lce_impl", "resolve_linear_impl", "use_impl"]
