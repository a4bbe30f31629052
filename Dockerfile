# The mixopt image: Ray head/worker nodes and the MLflow server of docker-compose.yml.
#   docker compose build            (or: docker build -t mixopt:latest .)
#   BASE_IMAGE=...                  any Debian bookworm image: python:3.11-slim-bookworm (default, from a
#                                   registry) or a bare one, e.g. the debootstrap base scripts/cluster.sh
#                                   builds where no registry is reachable (bookworm's python3 is 3.11)
# CPU-only torch is installed first and explicitly, so resolving the package never pulls CUDA wheels: from a
# torch-2.13.0 CPU wheel put in docker/wheels/ when there is one (scripts/cluster.sh links it there), else
# from the PyTorch CPU index. Extra CA certificates for pip (a TLS-inspecting proxy): docker/certs/*.crt.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    TOKENIZERS_PARALLELISM=false \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# Everything Python lives in one venv, whatever the base: a bare Debian gets python3 + venv from apt.
# libgomp1: LightGBM's OpenMP runtime (its wheel does not bundle one).
RUN set -eu; \
    pkgs=libgomp1; python3 -c "import venv, ensurepip" 2>/dev/null || pkgs="$pkgs python3 python3-venv"; \
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $pkgs; \
    rm -rf /var/lib/apt/lists/*; \
    python3 -c "import sys; assert sys.version_info[:2] == (3, 11), 'need Python 3.11, got ' + sys.version"; \
    python3 -m venv /opt/venv

# Extra CA certificates (docker/certs/*.crt, optional): pip trusts them on top of its own bundle.
COPY docker/certs/ /opt/venv/certs/
RUN set -eu; \
    if ls /opt/venv/certs/*.crt >/dev/null 2>&1; then \
        cat "$(python -c 'import pip._vendor.certifi as c; print(c.where())')" /opt/venv/certs/*.crt > /opt/venv/certs/bundle.pem; \
        printf '[global]\ncert = /opt/venv/certs/bundle.pem\n' > /opt/venv/pip.conf; \
    fi

COPY docker/wheels/ /tmp/wheels/
RUN set -eu; \
    if ls /tmp/wheels/torch-2.13.0*.whl >/dev/null 2>&1; then pip install /tmp/wheels/torch-2.13.0*.whl; \
    else pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu; fi; \
    rm -rf /tmp/wheels

# Same Ray and MLflow versions as the submitting machine: the Jobs API client and the cluster must agree.
# psycopg2 lets the MLflow server use the Postgres backend store.
RUN pip install "ray[default]==2.60.0" "mlflow==3.17.2" "psycopg2-binary>=2.9"

WORKDIR /opt/mixopt
COPY pyproject.toml ./
# mixopt's dependencies in a layer of their own: a code change rebuilds only the layers below
RUN python -c "import subprocess, sys, tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; subprocess.check_call([sys.executable, '-m', 'pip', 'install', *deps])"
COPY README.md ./
COPY mixopt ./mixopt
COPY proxies ./proxies
COPY kernels ./kernels
COPY examples ./examples
RUN pip install --no-deps . && pip check && cd / && python -c "import mixopt.proxies, mixopt.kernels, ray, mlflow, torch; assert torch.version.cuda is None, torch.__version__"

# Run as an unprivileged user; /data (the shared named volume) is owned by it.
RUN useradd --create-home --uid 1000 mixopt && mkdir -p /data /mlartifacts && chown mixopt:mixopt /data /mlartifacts
USER mixopt
WORKDIR /data
CMD ["mixopt", "--help"]
