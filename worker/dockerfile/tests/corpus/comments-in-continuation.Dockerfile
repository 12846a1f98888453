FROM registry.fedoraproject.org/fedora:41
# Packages, grouped by purpose.
RUN dnf install -y \
# the web server
      httpd \
# TLS support
      mod_ssl \

      # indented comment
      mod_security \
    && dnf clean all
LABEL name="fedora/comments" \
# a comment between labels
      version="3" \
      com.redhat.component="comments-container"
