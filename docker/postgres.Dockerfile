# Postgres for MLflow's backend store, built from any Debian bookworm image with apt's postgresql (15), for
# hosts that cannot pull postgres:17-bookworm (docker/compose.host.yml uses it; scripts/cluster.sh builds it).
# Same contract as the official image for what docker-compose.yml uses: POSTGRES_USER, POSTGRES_PASSWORD,
# POSTGRES_DB create the role and database on first start; data in /var/lib/postgresql/data.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
RUN set -eu; \
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql; \
    rm -rf /var/lib/apt/lists/*; \
    ln -s /usr/lib/postgresql/*/bin /usr/local/lib/pgbin; \
    mkdir -p /var/lib/postgresql/data /var/run/postgresql; \
    chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql; chmod 700 /var/lib/postgresql/data
COPY docker/postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENV PATH=/usr/local/lib/pgbin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
ENTRYPOINT ["bash", "/usr/local/bin/postgres-entrypoint.sh"]
CMD ["postgres"]
