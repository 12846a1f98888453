FROM registry.fedoraproject.org/fedora:41
LABEL name="fedora/crlf" \
      version="1" \
      com.redhat.component="crlf-container"
RUN echo one && \
    echo two

CMD ["/bin/bash"]
