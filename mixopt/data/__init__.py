"""Data layer: sources → tokenizer → token shards → mixture sampler, plus an offline demo corpus.

>>> from mixopt.data import build_demo_corpus, prepare_data, MixtureSampler  # doctest: +SKIP
>>> build_demo_corpus("demo")                                                # doctest: +SKIP
>>> data = prepare_data(load_job_config("demo/job.yaml"))                    # doctest: +SKIP
>>> tokens, domain_ids = MixtureSampler(data, data.prior(), seq_len=128, batch_size=16, seed=0).next_batch()
"""

from mixopt.data.demo import build_demo_corpus
from mixopt.data.prepare import prepare_data
from mixopt.data.sampler import MixtureSampler
from mixopt.data.shards import PreparedData, load_prepared
from mixopt.data.sources import read_documents
from mixopt.data.weights import validate_weights

__all__ = [
    "MixtureIterableDataset",
    "MixtureSampler",
    "PreparedData",
    "build_demo_corpus",
    "load_prepared",
    "prepare_data",
    "read_documents",
    "validate_weights",
]


def __getattr__(name: str):
    if name == "MixtureIterableDataset":  # imports torch; keep `import mixopt.data` light
        from mixopt.data.dataset import MixtureIterableDataset

        return MixtureIterableDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
