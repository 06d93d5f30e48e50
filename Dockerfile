# One image for every smartcity service (ingest, api, simulators): `smartcity <command>`.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY smartcity ./smartcity
COPY storage ./storage
COPY ingest ./ingest
COPY simulators ./simulators
COPY api ./api
COPY rules ./rules
COPY recorder ./recorder
COPY broker ./broker
COPY launcher ./launcher
RUN pip install --no-cache-dir -e . && useradd --system --home /data smartcity \
    && mkdir -p /data && chown smartcity /data
USER smartcity
ENV SMARTCITY_DATA_DIR=/data PYTHONUNBUFFERED=1
ENTRYPOINT ["smartcity"]
