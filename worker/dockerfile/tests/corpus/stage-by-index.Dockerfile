FROM registry.fedoraproject.org/fedora:41
RUN dnf install -y gcc make && dnf clean all
COPY hello.c /src/
RUN gcc -O2 -o /src/hello /src/hello.c

FROM registry.fedoraproject.org/fedora-minimal:41
COPY --from=0 /src/hello /usr/bin/hello
LABEL name="fedora/hello" version="1" com.redhat.component="hello-container"
CMD ["hello"]
