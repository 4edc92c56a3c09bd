# One image for the API, the worker, the migrations and the CMMS and PortaBilling simulators (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
# The image runs production: the development secrets are refused, the CMMS and SMS gateway must be named.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 ENVIRONMENT=production
COPY pyproject.toml README.md ./
COPY core core
COPY contracts contracts
COPY clients clients
COPY billing billing
COPY workflows workflows
COPY activities activities
COPY services services
COPY api api
COPY simulators simulators
COPY codec_server codec_server
COPY migrations migrations
COPY devstack devstack
COPY bench bench
COPY worker.py alembic.ini ./
# The bytecode, compiled once here (PYTHONDONTWRITEBYTECODE keeps the processes from writing it): the
# workflow sandbox imports the workflow modules afresh for every workflow it runs, and without it
# compiles them from source each time.
RUN pip install --no-cache-dir . && python -m compileall -q /app \
    && useradd --system --uid 10001 app && mkdir -p var && chown app var
USER app
EXPOSE 8000 8100 8200 8234
CMD ["python", "-m", "api"]
