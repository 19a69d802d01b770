# The REST gateway (the "app"). Build from the repo root:
#   docker build -f infra/gateway.Dockerfile -t neuroagent-gateway .
# The runtime stage installs only the gateway workspace's production closure, so this image MUST NOT
# contain the worker's Pyodide or piscina (test/compose.test.ts checks its npm ci line). The
# dashboard (/ui) is built in a stage of its own: its toolchain (vite, preact) is devDependencies.

# ---- ui: the Vite build of services/dashboard; only its dist/ reaches the image
FROM node:24-bookworm-slim AS ui
WORKDIR /app
COPY package.json package-lock.json ./
COPY contracts/package.json contracts/
COPY services/platform/package.json services/platform/
COPY services/gateway/package.json services/gateway/
COPY services/worker/package.json services/worker/
COPY scripts/build-ui.ts scripts/
COPY scripts/lib/ui-build.ts scripts/lib/
COPY services/dashboard services/dashboard
# The root's devDependencies, never the worker's; the build runs once, explicitly, not as prepare.
RUN npm ci --ignore-scripts --workspace services/gateway --include-workspace-root \
  && npm run build:ui

# ---- runtime
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
# npm ci runs the root `prepare` script: it finds no vite here and skips the build with one line.
COPY scripts/build-ui.ts scripts/
COPY scripts/lib/ui-build.ts scripts/lib/
RUN npm ci --omit=dev --workspace services/gateway --include-workspace-root=false \
  && npm cache clean --force

# Source trees, not packed packages: npm symlinks the workspaces, so their real path is outside
# node_modules and Node strips the types at load time.
COPY contracts/src contracts/src
COPY services/platform/src services/platform/src
COPY services/gateway/src services/gateway/src
COPY scripts/token.ts scripts/token.ts
# The default NEUROAGENT_UI__DIR, services/dashboard/dist under /app.
COPY --from=ui /app/services/dashboard/dist services/dashboard/dist

# Writable for the node user: the dev JWT secret and the default SQLite ledger (compose mounts a
# volume here and points the ledger at postgres).
RUN mkdir -p /app/.data && chown node:node /app/.data

# Code and node_modules stay root-owned: the process can read them but not change them.
USER node
EXPOSE 8078
CMD ["node", "services/gateway/src/main.ts"]
