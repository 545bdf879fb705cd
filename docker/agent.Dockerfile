# The UVE VM agent images, FROM scratch. Every file comes from the build context that
# docker/build-images.js assembles from this machine's files (no registry, no download): build with
#   npm run docker:images        (= node docker/build-images.js)
# not with `docker build` by hand. Works with the classic builder and with BuildKit.
#
# Layers, shared between the two images as far as possible:
#   base    Node, its shared libraries and the dynamic loader, /bin/sh, users, /tmp, the health check
#   home    folders the agent's user writes
#   media   ffmpeg with libx264 and its libraries (H264 streams; x11grab)
#   x11     LINUX_X11 only: Xvfb, xkbcomp, xterm, a few X clients, their libraries, xkb data, fonts
#   modules the agent's production node_modules (+ libraries of their native addons)
#   app     apps/vm-agent (dist, package.json, sample UA builds), packages/*/dist, and the agent
#           bundled into one file (dist/bundle/main.js + .map), which the image runs
ARG PLATFORM=wasm

FROM scratch AS base
COPY base/ /
COPY --chown=10001:10001 home/ /
COPY media/ /

FROM base AS system-wasm

FROM base AS system-x11
COPY x11/ /

FROM system-${PLATFORM} AS agent
ARG UVE_VM_PLATFORM=WASM
ARG VERSION=0.0.0
ARG INPUTS_SHA256=unknown
# whether the image's ffmpeg has libx264, checked by build-images.js on the binary it copies in
ARG FFMPEG_LIBX264=false
# configuration first, so that it stays cached when only the app changes
ENV PATH=/usr/local/bin:/usr/bin:/bin \
    HOME=/home/uve \
    NODE_ENV=production \
    UVE_VM_PROVIDER=DOCKER \
    UVE_VM_PLATFORM=${UVE_VM_PLATFORM} \
    UVE_FFMPEG_LIBX264=${FFMPEG_LIBX264}
USER 10001:10001
WORKDIR /app
STOPSIGNAL SIGTERM
# GET /healthz on the agent's UVE-3 port (found from /proc: the port is usually chosen at start)
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 CMD ["/usr/bin/node", "/uve/healthcheck.js"]
# the bundle: one file to load instead of the module tree (~0.1-0.2 s of a cold start); its source
# map is beside it: NODE_OPTIONS=--enable-source-maps maps stack traces to src/*.ts (parsing it costs
# 0.6 s or more at start, hence not on by default)
ENTRYPOINT ["/usr/bin/node", "/app/apps/vm-agent/dist/bundle/main.js"]
COPY modules/ /
COPY app/ /
# one instruction: every instruction after the app's layer runs again on each app change
LABEL org.opencontainers.image.title="UVE VM agent" \
      org.opencontainers.image.description="A UVE Virtual Machine (apps/vm-agent); configured by environment, see uve-vm-agent --help" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      uve.platform="${UVE_VM_PLATFORM}" \
      uve.inputs.sha256="${INPUTS_SHA256}"
