# The task workers (the "tasks"): one image for every queue; TASKS_QUEUES picks what a container
# consumes. Build from the repo root:
#   docker build -f infra/worker.Dockerfile -t neuroagent-worker .
# Installs only the worker workspace's production closure (Pyodide, piscina), never the gateway's Koa.
FROM node:24-bookworm-slim

ENV NODE_ENV=production
WORKDIR /app

# Manifests first, so the dependency layer is reused until a package.json or the lockfile changes.
# Every workspace manifest is needed: npm ci checks the whole lockfile against all of them.
COPY package.json package-lock.json ./
COPY contracts/package.json contracts/
COPY services/platform/package.json services/platform/
COPY services/gateway/package.json services/gateway/
COPY services/worker/package.json services/worker/
RUN npm ci --omit=dev --workspace services/worker --include-workspace-root=false \
  && npm cache clean --force

# Source trees, not packed packages: npm symlinks the workspaces, so their real path is outside
# node_modules and Node strips the types at load time.
COPY contracts/src contracts/src
COPY services/platform/src services/platform/src
COPY services/worker/src services/worker/src
# The worker has no HTTP port; compose's health check runs this against its heartbeat file.
COPY infra/healthcheck-file.mjs infra/healthcheck-file.mjs

# Code and node_modules stay root-owned and read-only for the process. Pyodide therefore MUST get
# its packages from the configured package source; it cannot cache wheels into node_modules.
# Writable for the node user: /tmp (the heartbeat file), the snapshot folder (a volume in compose),
# and /app/.data for the relative defaults (.data/snapshots; .data/pyodide-packages, the cache of an
# http(s) package source). The sandbox needs no OS packages: Pyodide is WebAssembly.
RUN mkdir -p /var/lib/neuroagent/snapshots /var/lib/neuroagent/circuits /app/.data \
  && chown node:node /var/lib/neuroagent/snapshots /var/lib/neuroagent/circuits /app/.data
ENV TASKS_PYTHON__SNAPSHOT_DIR=/var/lib/neuroagent/snapshots
USER node

# The Pyodide memory snapshot, built now for the image's own TASKS_* config (no preload, no package
# source), so a worker started with that config restores it instead of building it at first start.
# A snapshot fits one exact configuration: a runtime preload list (or package source) different from
# this build's makes the worker build another snapshot at first start (docker-compose.yml does so).
RUN node services/worker/src/build-snapshot.ts
CMD ["node", "services/worker/src/main.ts"]
