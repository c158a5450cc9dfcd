# One image for every e-Backpack service (docker-compose.yml picks the command).
# Bookworm, as on the development machines: the Debian package names below are bookworm's.
FROM python:3.11-slim-bookworm
# Run-time packages only: WeasyPrint's Pango and HarfBuzz (subset: fast PDFs) and fonts; poppler-utils
# (pdftotext, pdftoppm) and libzbar0 for the importer, which runs them under prlimit (util-linux).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b \
      libharfbuzz-subset0 fonts-dejavu-core poppler-utils libzbar0 util-linux \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml ./
COPY ebackpack ebackpack
COPY services services
COPY schemas schemas
RUN pip install --no-cache-dir . && rm -rf /app/build
# Unprivileged; its home is the data directory, with the signing-key folder the services share (a volume).
RUN useradd --system --home-dir /var/lib/ebackpack --create-home ebackpack \
 && mkdir -p /var/lib/ebackpack/keys && chown -R ebackpack /var/lib/ebackpack && chmod 0700 /var/lib/ebackpack/keys
USER ebackpack
WORKDIR /var/lib/ebackpack
ENV EBACKPACK_DATA_DIR=/var/lib/ebackpack EBACKPACK_EMBEDDED=false PYTHONUNBUFFERED=1
CMD ["ebackpack", "--help"]
