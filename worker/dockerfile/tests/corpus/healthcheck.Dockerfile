FROM registry.fedoraproject.org/fedora:41
LABEL name="fedora/redis" version="7" com.redhat.component="redis-container"
RUN dnf install -y redis && dnf clean all
VOLUME ["/var/lib/redis"]
WORKDIR /var/lib/redis
EXPOSE 6379/tcp
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s \
  CMD redis-cli ping || exit 1
USER redis
ENTRYPOINT ["redis-server"]
CMD ["--protected-mode", "no"]
