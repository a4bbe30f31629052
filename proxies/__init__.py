"""Proxy language models (dense and mixture-of-experts) and the trainer that scores a data mixture.

>>> from mixopt.proxies import ProxyConfig, TrainSettings, RunRecord, train_proxy, build_model
>>> build_model(ProxyConfig.preset("moe-tiny").with_vocab(512)).cfg.n_experts
8
"""

from mixopt.proxies.config import PRESETS, ProxyConfig, TrainSettings
from mixopt.proxies.record import RunRecord
from mixopt.proxies.trainer import build_model, default_threads, evaluate, train_proxy

__all__ = ["PRESETS", "ProxyConfig", "RunRecord", "TrainSettings", "build_model", "default_threads", "evaluate",
           "train_proxy"]
