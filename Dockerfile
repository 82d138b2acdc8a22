# One image for every soundtag service (worker, migrate, beat, scanner, producer). It copies every
# package pyproject.toml installs (tests/test_compose.py builds the wheel from these paths).
FROM python:3.11-slim

# The default pulls PyPI's Linux torch build, which bundles CUDA for GPU workers.
# For CPU-only images: --build-arg TORCH_SPEC="torch==2.13.0 --index-url <your CPU wheel index>"
ARG TORCH_SPEC="torch==2.13.0"

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/models

WORKDIR /app
RUN pip install ${TORCH_SPEC}
COPY pyproject.toml README.md ./
COPY soundtag ./soundtag
COPY worker ./worker
COPY producer ./producer
COPY db ./db
COPY review ./review
COPY vectors ./vectors
COPY heads ./heads
COPY model ./model
RUN pip install ".[monitoring,openvino]" && useradd --create-home soundtag && mkdir -p /models && chown soundtag /models
# Not root: Celery warns against (and with pickle refuses) running workers as root.
USER soundtag
CMD ["soundtag", "--help"]
