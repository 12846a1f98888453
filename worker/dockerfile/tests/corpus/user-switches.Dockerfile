FROM registry.fedoraproject.org/fedora:41
USER root
RUN dnf install -y nodejs && dnf clean all
RUN useradd -u 1001 -r -g 0 -d /opt/app-root -s /sbin/nologin default
USER default
WORKDIR /opt/app-root
RUN npm config set prefix /opt/app-root
USER 0
RUN chown -R 1001:0 /opt/app-root
USER 1001:0
LABEL name="fedora/nodejs" version="20" com.redhat.component="nodejs-container"
CMD ["node"]
