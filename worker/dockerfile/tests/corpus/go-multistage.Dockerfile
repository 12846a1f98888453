# Build the binary in a full Go toolchain image, ship it on a minimal one.
FROM registry.fedoraproject.org/fedora:41 AS build
RUN dnf install -y golang git && dnf clean all
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/app ./cmd/app

FROM registry.fedoraproject.org/fedora-minimal:41
LABEL name="fedora/go-app" version="1.2.3" com.redhat.component="go-app-container"
COPY --from=build /out/app /usr/bin/app
USER 65534
ENTRYPOINT ["/usr/bin/app"]
