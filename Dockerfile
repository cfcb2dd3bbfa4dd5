# frictionwatch worker / generator image.
# The compiled click decoder (native/, Rust) is built in a stage of its own, so the image
# carries its wheel and not the toolchain.
FROM python:3.11-slim AS native
RUN apt-get update && apt-get install -y --no-install-recommends curl gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
ENV PATH=/root/.cargo/bin:$PATH
COPY native /native
RUN pip wheel --no-cache-dir --wheel-dir /wheels /native

FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY frictionwatch ./frictionwatch
COPY streams ./streams
COPY detectors ./detectors
COPY alerts ./alerts
COPY grafana ./grafana
COPY --from=native /wheels /wheels
RUN pip install --no-cache-dir . /wheels/*.whl && rm -rf /wheels && useradd --create-home frictionwatch
USER frictionwatch
# Faust keeps its data directory (frictionwatch-data/) in the working directory: the user's own.
WORKDIR /home/frictionwatch
ENTRYPOINT ["frictionwatch"]
CMD ["worker"]
