# The one Relais image: `relais <command>` selects the process (operator, ingest, engage, deliver).
# Node runs the TypeScript sources directly (type stripping), so there is no build step: the first
# stage installs the production dependencies, the second copies them and the sources onto a
# distroless Node 24 base (no shell, no package manager) and runs as a non-root user.
#
#   docker build -t ghcr.io/relais-dev/relais:0.1.0 .
#
# charts/relais defaults to this image; test/integration/chart.test.ts keeps the name, the version,
# the user and the entrypoint equal on both sides.
ARG NODE_MAJOR=24

FROM node:${NODE_MAJOR}-bookworm-slim AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM gcr.io/distroless/nodejs${NODE_MAJOR}-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="relais" \
      org.opencontainers.image.description="Relais: operator, ingest, engage and deliver pools in one image" \
      org.opencontainers.image.source="https://github.com/relais-dev/relais" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
WORKDIR /app
COPY --from=dependencies /app/node_modules ./node_modules
COPY package.json ./
COPY bin/relais.ts ./bin/
COPY crds ./crds
COPY runtime ./runtime
COPY operator ./operator
COPY workers ./workers
# distroless' nonroot user; the chart's podSecurityContext runs as the same uid.
USER 65532:65532
ENTRYPOINT ["/nodejs/bin/node", "bin/relais.ts"]
CMD ["--help"]
