# syntax=docker/dockerfile:1
# Settle: build with the dev dependencies, run with production ones only, as a non-root user.
#   docker build -t settle .
#   docker run -p 8080:8080 --env-file .env settle                  # role all
#   docker run --env-file .env settle serve --role worker           # a worker
# Settings: .env.example. HOST defaults to 0.0.0.0 in the image so the port can be published.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# the workspace's manifest (the typed client, built with the gateway) before the install
COPY packages/node/package.json ./packages/node/
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY test ./test
COPY bench ./bench
COPY dashboard ./dashboard
COPY scripts ./scripts
COPY packages ./packages
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:20-bookworm-slim AS runtime
# NODE_OPTIONS: the V8 heap cap (docs/operations.md, "Memory"); give the container at least 512 MB
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-old-space-size=384 \
    HOST=0.0.0.0 \
    PORT=8080 \
    SETTLE_DATA_DIR=/var/lib/settle
WORKDIR /app
COPY --from=build --chown=root:root /app/package.json ./
COPY --from=build --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist/src ./dist/src
COPY --from=build --chown=root:root /app/dist/dashboard ./dist/dashboard
COPY --from=build --chown=root:root /app/dist/reference ./dist/reference
COPY README.md LICENSE CHANGELOG.md ./
COPY docs ./docs
# the image's `node` user (uid 1000) owns only the data directory (embedded database, generated keys)
RUN mkdir -p /var/lib/settle && chown node:node /var/lib/settle
USER node
VOLUME ["/var/lib/settle"]
EXPOSE 8080
# liveness of the process; use /readyz for routing (it goes 503 while the database is down or
# the process is shutting down). No curl in the slim image: Node's fetch does it.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/src/main.js"]
CMD ["serve"]
