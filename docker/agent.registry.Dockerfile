# The UVE VM agent images for machines that CAN reach Docker Hub and Debian mirrors: the same
# layout, user, environment, health check and entry point as the FROM scratch images that
# docker/build-images.js makes (docs/docker.md), but built from node:20-bookworm-slim with apt.
# Not built in CI (no registry there). From the repository root:
#
#   DOCKER_BUILDKIT=1 docker build -f docker/agent.registry.Dockerfile --build-arg PLATFORM=wasm \
#     --build-arg UVE_VM_PLATFORM=WASM -t uve/vm-agent-wasm:0.1.0 .
#   DOCKER_BUILDKIT=1 docker build -f docker/agent.registry.Dockerfile --build-arg PLATFORM=x11 \
#     --build-arg UVE_VM_PLATFORM=LINUX_X11 -t uve/vm-agent-x11:0.1.0 .
#
# BuildKit reads docker/agent.registry.Dockerfile.dockerignore (keeps node_modules, dist and
# .git out of the context). Tag with the version in apps/vm-agent/package.json: that is the tag
# the gateway's DockerProvider expects unless it is given other image names.
ARG PLATFORM=wasm
ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: the agent, the packages it uses, the sample UAs; then production dependencies only
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY . .
RUN npm ci --no-audit --no-fund --include-workspace-root -w @uve/protocol -w @uve/queue -w @uve/vm-agent \
 && npm run build -w @uve/protocol -w @uve/queue -w @uve/vm-agent \
 && npm prune --omit=dev --no-audit --no-fund -w @uve/protocol -w @uve/queue -w @uve/vm-agent \
 && mkdir -p /out/app/packages /out/app/apps/vm-agent/uas \
 && cp -a node_modules /out/app/ \
 && for p in protocol queue; do mkdir -p /out/app/packages/$p && cp -a packages/$p/package.json packages/$p/dist /out/app/packages/$p/; done \
 && cp -a apps/vm-agent/package.json apps/vm-agent/dist /out/app/apps/vm-agent/ \
 && for d in apps/vm-agent/uas/*/build; do mkdir -p /out/app/$d && cp -a $d/. /out/app/$d/; done \
 && if [ -d apps/vm-agent/uas-x11 ]; then cp -a apps/vm-agent/uas-x11 /out/app/apps/vm-agent/; fi \
 && find /out/app -name '*.map' -delete

# ---- system: ffmpeg (H264) for every VM; the X server, xterm and X clients for LINUX_X11
FROM ${NODE_IMAGE} AS system-wasm
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/*

FROM system-wasm AS system-x11
RUN apt-get update \
 && apt-get install -y --no-install-recommends xvfb x11-xkb-utils xterm x11-apps x11-utils xauth fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -m 1777 /tmp/.X11-unix

FROM system-${PLATFORM} AS agent
ARG UVE_VM_PLATFORM=WASM
# the scratch images' paths: node at /usr/bin/node (the node image has it in /usr/local/bin)
RUN groupadd -g 10001 uve \
 && useradd -u 10001 -g 10001 -d /home/uve -m -s /bin/sh uve \
 && install -d -o 10001 -g 10001 /var/lib/xkb \
 && if [ ! -e /usr/bin/node ]; then ln -s /usr/local/bin/node /usr/bin/node; fi
COPY --from=build /out/app /app
COPY docker/healthcheck.js /uve/healthcheck.js
ENV PATH=/usr/local/bin:/usr/bin:/bin \
    HOME=/home/uve \
    NODE_ENV=production \
    UVE_VM_PROVIDER=DOCKER \
    UVE_VM_PLATFORM=${UVE_VM_PLATFORM}
USER 10001:10001
WORKDIR /app
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 CMD ["/usr/bin/node", "/uve/healthcheck.js"]
ENTRYPOINT ["/usr/bin/node", "/app/apps/vm-agent/dist/main.js"]
LABEL org.opencontainers.image.title="UVE VM agent" \
      org.opencontainers.image.licenses="Apache-2.0" \
      uve.platform="${UVE_VM_PLATFORM}"
