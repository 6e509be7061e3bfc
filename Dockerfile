# Multi-arch image: docker buildx build --platform linux/amd64,linux/arm64 -t mirrorproxy .
FROM --platform=$BUILDPLATFORM mcr.microsoft.com/dotnet/sdk:10.0 AS build
ARG TARGETARCH
WORKDIR /src
COPY Directory.Build.props Directory.Packages.props MirrorProxy.sln ./
COPY src/ src/
RUN dotnet publish src/MirrorProxy -c Release -a $TARGETARCH --self-contained -p:PublishTrimmed=false -o /out

FROM mcr.microsoft.com/dotnet/runtime-deps:10.0-bookworm-slim
RUN useradd --uid 10001 --no-create-home mirrorproxy \
 && mkdir -p /var/cache/mirrorproxy && chown 10001 /var/cache/mirrorproxy
COPY --from=build /out /app
USER 10001
ENV MIRRORPROXY__CACHE__PATH=/var/cache/mirrorproxy
VOLUME /var/cache/mirrorproxy
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=3s CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/5000 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q ' 200 ' <&3"]
ENTRYPOINT ["/app/mirrorproxy", "serve"]
