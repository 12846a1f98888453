FROM registry.fedoraproject.org/fedora:41 AS deps
RUN dnf install -y gcc && dnf clean all
USER 1001

FROM deps AS build
COPY . /src
RUN make -C /src

FROM deps
COPY --from=build /src/out /usr/local/bin/
LABEL name="fedora/chain" version="1" com.redhat.component="chain-container"
