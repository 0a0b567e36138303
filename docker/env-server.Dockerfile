# An agentgym env served over HTTP (`agentgym serve-env`), for remote or isolated environments.
# Build from the repository root:
#   docker build -f docker/env-server.Dockerfile -t agentgym-env-server .
# Run (binding beyond loopback needs the token; clients send it as a bearer token, RemoteEnv reads
# AGENTGYM_ENV_TOKEN):
#   docker run --rm -p 127.0.0.1:8100:8100 -e AGENTGYM_ENV_TOKEN=$(openssl rand -hex 16) \
#     -e ENV_ID=agentgym/Calculator-v0 agentgym-env-server
# Extra arguments go to `agentgym serve-env` (e.g. --max-sessions 16 --idle-timeout 300).
# EXTRAS picks the optional dependencies the env needs (e.g. --build-arg EXTRAS=serve,search).
FROM python:3.11-slim

ARG EXTRAS=serve
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LANG=C.UTF-8 ENV_ID=agentgym/Calculator-v0 PORT=8100 \
    AGENTGYM_CACHE=/home/agentgym/.cache/agentgym HF_HOME=/home/agentgym/.cache/huggingface

# An unprivileged user owns its caches (indexes, model files): directories 0755, files 0644 by umask 022, so
# a cache mounted or copied in stays readable and nothing in the image is writable by the server but its home.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin agentgym \
    && install -d -o agentgym -g agentgym -m 0755 /home/agentgym/.cache/agentgym /home/agentgym/.cache/huggingface

WORKDIR /opt/agentgym
COPY pyproject.toml setup.py README.md ./
COPY agentgym ./agentgym
COPY envs ./envs
COPY sandboxes ./sandboxes
COPY trainers ./trainers
# The project itself from the build context; its dependency floors are in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install --no-compile ".[${EXTRAS}]" && rm -rf /root/.cache

USER 10001:10001
WORKDIR /home/agentgym
EXPOSE 8100
# /health needs no token and answers even while every worker thread is busy with env steps.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['PORT']}/health\", timeout=4)"]
ENTRYPOINT ["sh", "-c", "exec agentgym serve-env \"$ENV_ID\" --host 0.0.0.0 --port \"$PORT\" \"$@\"", "serve-env"]
