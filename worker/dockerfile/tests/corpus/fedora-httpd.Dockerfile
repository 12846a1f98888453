FROM registry.fedoraproject.org/fedora:41

LABEL summary="The Apache HTTP Server" \
      name="fedora/httpd" \
      version="2.4" \
      com.redhat.component="httpd-container" \
      description="Apache httpd 2.4 available as container, is a powerful, efficient, \
and extensible web server." \
      io.k8s.description="Apache httpd 2.4 web server" \
      io.openshift.expose-services="8080:http,8443:https" \
      io.openshift.tags="builder,httpd,httpd24" \
      maintainer="Fedora Container SIG <container-sig@lists.fedoraproject.org>"

ENV HTTPD_CONTAINER_SCRIPTS_PATH=/usr/share/container-scripts/httpd/ \
    HTTPD_APP_ROOT=/opt/app-root

EXPOSE 8080 8443

RUN dnf install -y --setopt=tsflags=nodocs httpd mod_ssl && \
    dnf clean all && \
    rm -rf /var/cache/dnf

COPY root /

USER 1001

CMD ["/usr/bin/run-httpd"]
