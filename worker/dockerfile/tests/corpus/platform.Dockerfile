FROM --platform=$BUILDPLATFORM registry.fedoraproject.org/fedora:41 AS cross
ARG TARGETARCH
RUN echo building for $TARGETARCH > /arch

FROM --platform=linux/amd64 registry.fedoraproject.org/fedora-minimal:41   AS   final
COPY --from=cross /arch /arch
LABEL name="fedora/platform" version="1" com.redhat.component="platform-container"
