# syntax=docker/dockerfile:1
# MirrorProxy as a Native AOT program on a minimal, shell-less base, for linux/amd64 and linux/arm64:
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t mirrorproxy:0.1.0 .
#
# The build stage runs on the build machine's own platform and cross-compiles for TARGETARCH (clang + lld
# with the target's C libraries), so an arm64 image builds at native speed on an amd64 machine.
# Native AOT starts in a fraction of the JIT build's time and uses about half its memory (see
# benchmarks/README.md), which matters on a Raspberry Pi.

FROM --platform=$BUILDPLATFORM mcr.microsoft.com/dotnet/sdk:10.0-bookworm-slim AS build
ARG TARGETARCH
RUN set -eux; \
    case "$TARGETARCH" in \
      amd64) rid=linux-x64; debarch=amd64 ;; \
      arm64) rid=linux-arm64; debarch=arm64 ;; \
      *) echo "unsupported TARGETARCH $TARGETARCH" >&2; exit 1 ;; \
    esac; \
    echo "$rid" > /rid; \
    if [ "$debarch" != "$(dpkg --print-architecture)" ]; then dpkg --add-architecture "$debarch"; fi; \
    apt-get update; \
    apt-get install -y --no-install-recommends clang lld llvm \
      "libc6-dev:$debarch" "libstdc++-12-dev:$debarch" "libgcc-12-dev:$debarch" "zlib1g-dev:$debarch"; \
    rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Directory.Build.props Directory.Packages.props MirrorProxy.sln ./
COPY src/ src/
RUN dotnet publish src/MirrorProxy -c Release -r "$(cat /rid)" -p:PublishAot=true \
      -p:LinkerFlavor=lld -p:ObjCopyName=llvm-objcopy -p:StripSymbols=true -o /out \
 && rm -f /out/*.dbg \
 && mkdir -p /cache

# runtime-deps: the C runtime and OpenSSL only. No shell, no package manager; non-root user 'app' (1654).
FROM mcr.microsoft.com/dotnet/runtime-deps:10.0-noble-chiseled
COPY --from=build /out/mirrorproxy /app/mirrorproxy
COPY --from=build --chown=1654:1654 /cache /var/cache/mirrorproxy
USER 1654
ENV MIRRORPROXY__CACHE__PATH=/var/cache/mirrorproxy
VOLUME /var/cache/mirrorproxy
EXPOSE 5000
# With TLS on, use: mirrorproxy health --url https://127.0.0.1:5000/healthz --insecure
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s CMD ["/app/mirrorproxy", "health"]
ENTRYPOINT ["/app/mirrorproxy", "serve"]
