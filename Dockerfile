# The mixopt image: Ray head/worker nodes and the MLflow server of docker-compose.yml.
#   docker compose build            (or: docker build -t mixopt:latest .)
# CPU-only torch is installed first and explicitly, so resolving the package never pulls CUDA wheels.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    TOKENIZERS_PARALLELISM=false

RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

# Same Ray and MLflow versions as the submitting machine: the Jobs API client and the cluster must agree.
# psycopg2 lets the MLflow server use the Postgres backend store.
RUN pip install "ray[default]==2.60.0" "mlflow==3.17.2" "psycopg2-binary>=2.9"

WORKDIR /opt/mixopt
COPY pyproject.toml README.md ./
COPY mixopt ./mixopt
COPY proxies ./proxies
COPY kernels ./kernels
COPY examples ./examples
RUN pip install . && python -c "import mixopt.proxies, mixopt.kernels, ray, mlflow, torch; assert torch.version.cuda is None, torch.__version__"

# Run as an unprivileged user; /data (the shared named volume) is owned by it.
RUN useradd --create-home --uid 1000 mixopt && mkdir -p /data /mlartifacts && chown mixopt:mixopt /data /mlartifacts
USER mixopt
WORKDIR /data
CMD ["mixopt", "--help"]
