# The kgrec API image (used by docker-compose.yml). CPU PyTorch from PyPI.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY schema ./schema
COPY graph ./graph
COPY etl ./etl
COPY gnn ./gnn
COPY api ./api
COPY kgrec ./kgrec
RUN pip install --no-cache-dir .
EXPOSE 8000
# `kgrec serve` arrives with the API; until then the image offers the CLI (load, schema, stats).
CMD ["kgrec", "--help"]
