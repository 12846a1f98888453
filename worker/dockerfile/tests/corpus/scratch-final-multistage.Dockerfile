FROM registry.fedoraproject.org/fedora:41 AS build
RUN dnf install -y golang && dnf clean all
COPY main.go /src/main.go
RUN cd /src && CGO_ENABLED=0 go build -o /app main.go

FROM scratch
COPY --from=build /app /app
LABEL name="fedora/static" version="1" com.redhat.component="static-container"
ENTRYPOINT ["/app"]
