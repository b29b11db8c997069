# syntax=docker/dockerfile:1.7
# modeldr: the operator (`modeldr operator`, the chart's default image) and the node agent
# (`modeldr agent`, the modeldr-agent chart's), without torch: the modeldr package without its
# serving extra. The model server has its own images (serving/Dockerfile, Dockerfile.cpu).
#   docker build -t ghcr.io/modeldr/modeldr:dev .
#   docker run --rm ghcr.io/modeldr/modeldr:dev --help
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dockerfile.dockerignore keeps the context to the package's sources (an allow-list).
COPY . ./
# The pinned versions of everything the package needs; no [serving] extra: no torch.
RUN pip install -c constraints.txt . && pip check \
    && ! python -c "import torch" 2>/dev/null

FROM ${PYTHON_IMAGE}
# The agent makes network faults with nftables and tc (iproute2) in the pods' namespaces
# (unshare, util-linux, is in the base image); the operator needs none of them.
RUN apt-get update \
    && apt-get install -y --no-install-recommends nftables iproute2 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 65532 --home-dir /nonexistent --shell /usr/sbin/nologin modeldr
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# The chart runs it as 65532 with a read-only root filesystem and /tmp as an emptyDir; the
# agent's DaemonSet as root with NET_ADMIN.
USER 65532:65532
EXPOSE 8080 9090
STOPSIGNAL SIGTERM
ENTRYPOINT ["modeldr"]
CMD ["operator"]
