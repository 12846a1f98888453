FROM registry.fedoraproject.org/fedora:41 AS builder
RUN dnf install -y cargo rust openssl-devel \
 && dnf clean all
WORKDIR /build
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN --mount=type=cache,target=/root/.cargo/registry \
    cargo build --release --locked

FROM registry.fedoraproject.org/fedora-minimal:41 AS runtime
RUN microdnf install -y openssl && microdnf clean all
COPY --from=builder /build/target/release/server /usr/local/bin/server
RUN useradd -r -u 1001 server
USER server
LABEL name="fedora/rust-server" \
      version="0.9" \
      com.redhat.component="rust-server-container"
EXPOSE 3000
CMD ["server", "--listen", "0.0.0.0:3000"]
