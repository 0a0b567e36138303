# The Docker sandbox tier: a small Python image with the agentgym driver and nothing else.
# Run by agentgym.sandboxes.docker_tier with --network none, memory/PID/CPU limits, a read-only root,
# a private /tmp, uid 65534 and all capabilities dropped.
FROM python:3.11-slim
RUN useradd --uid 65534 --no-create-home --shell /usr/sbin/nologin sandbox 2>/dev/null || true
COPY sandboxes/driver.py /opt/agentgym/driver.py
RUN chmod 0444 /opt/agentgym/driver.py
USER 65534:65534
WORKDIR /tmp
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LANG=C.UTF-8
CMD ["sleep", "infinity"]
