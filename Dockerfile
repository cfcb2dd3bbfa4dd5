# frictionwatch worker / generator image.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY frictionwatch ./frictionwatch
COPY streams ./streams
COPY detectors ./detectors
COPY alerts ./alerts
RUN pip install --no-cache-dir . && useradd --create-home frictionwatch
USER frictionwatch
ENTRYPOINT ["frictionwatch"]
CMD ["worker"]
