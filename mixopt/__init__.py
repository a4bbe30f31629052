"""mixopt: data-mixture optimisation for language-model pretraining."""

from mixopt.config import JobConfig, load_job_config
from mixopt.errors import MixoptError

__all__ = ["JobConfig", "MixoptError", "load_job_config"]
__version__ = "0.1.0"
