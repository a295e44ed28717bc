# syntax=docker/dockerfile:1
# Slipstream's server image: the native core is compiled in a build stage (node-gyp needs python3,
# make and g++), the runtime stage carries only Node, the runtime dependencies, the compiled addon
# and the sources (TypeScript runs through tsx: there is no build step), and runs as the unprivileged
# `node` user.
#
#   docker build -t slipstream .
#   docker run --rm -p 8000:8000 slipstream                         # the embedded default model
#   docker run --rm -p 8000:8000 -v /srv/models/qwen:/models/qwen:ro slipstream serve --host 0.0.0.0 -m /models/qwen
#   docker run --rm -p 8000:8000 -e HF_TOKEN -v slipstream-cache:/cache slipstream serve --host 0.0.0.0 -m hf:org/name
#
# Models are mounted read-only (anywhere, /models by convention) or pulled at start with `-m hf:…`
# into /cache ($SLIPSTREAM_CACHE; a volume, so a restart does not download again; HF_TOKEN for gated
# or private repositories). SIGTERM drains in-flight requests (up to 30 s) and exits 0.

ARG NODE_VERSION=20

FROM node:${NODE_VERSION}-bookworm AS build
# node:bookworm already carries these; listed so that the build stage says what it needs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# What `npm ci` needs to install the dependencies and compile the native core (the package's
# install script); copied first so that a change to src/ reuses this layer.
COPY package.json package-lock.json binding.gyp ./
COPY native ./native
COPY scripts ./scripts
RUN npm ci --omit=dev --no-audit --no-fund \
 && test -f build/Release/slipstream.node \
 && npm cache clean --force

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
ENV NODE_ENV=production \
    SLIPSTREAM_CACHE=/cache
WORKDIR /app
# Owned by root and read-only to the server: only /cache (and /tmp, tsx's compile cache) are written.
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/build/Release/slipstream.node ./build/Release/slipstream.node
COPY package.json package-lock.json tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY models ./models
COPY recipes ./recipes
RUN mkdir -p /cache /models && chown node:node /cache
USER node
VOLUME ["/cache"]
EXPOSE 8000
# No curl in the slim image: Node asks /health (503 while draining, so the container shows unhealthy).
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8000/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "bin/slipstream.js"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
