# syntax=docker/dockerfile:1.7
# PostgreSQL from Debian's packages, for running the manifests on one machine (the `podman`
# overlay, `make deploy-check`). Clusters use CloudNativePG or a managed database instead
# (deploy/README.md); this image exists because public registries (and so the official
# postgres image) are not reachable from every build machine.
#
#   docker build -f deploy/docker/postgres.Dockerfile -t REGISTRY/recsys/postgres:TAG .
#
# On first start it creates the cluster in $PGDATA with the superuser $POSTGRES_USER
# (password $POSTGRES_PASSWORD, SCRAM over TCP) and the database $POSTGRES_DB.

ARG DEBIAN_IMAGE=debian:12.8-slim
FROM ${DEBIAN_IMAGE}
ARG UID=10001
ARG POSTGRES_MAJOR=15
# Our own UID for the postgres user (the package keeps an existing one), and no default
# cluster (the entrypoint creates one in the volume).
RUN groupadd --system --gid "${UID}" postgres \
 && useradd --system --uid "${UID}" --gid postgres --home-dir /var/lib/postgresql --shell /bin/sh postgres \
 && mkdir -p /etc/postgresql-common \
 && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "postgresql-${POSTGRES_MAJOR}" \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data && chown -R postgres:postgres /var/lib/postgresql
COPY deploy/docker/postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENV PATH=/usr/lib/postgresql/${POSTGRES_MAJOR}/bin:$PATH \
    PGDATA=/var/lib/postgresql/data/pgdata \
    POSTGRES_USER=postgres \
    POSTGRES_DB=postgres
USER ${UID}:${UID}
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
