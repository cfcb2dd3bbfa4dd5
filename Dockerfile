# frictionwatch worker / generator image.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY frictionwatch ./frictionwatch
COPY streams ./streams
COPY detectors ./detectors
COPY alerts ./alerts
COPY grafana ./grafana
RUN pip install --no-cache-dir . && useradd --create-home frictionwatch
USER frictionwatch
# Faust keeps its data directory (frictionwatch-data/) in the working directory: the user's own.
WORKDIR /home/frictionwatch
ENTRYPOINT ["frictionwatch"]
CMD ["worker"]
