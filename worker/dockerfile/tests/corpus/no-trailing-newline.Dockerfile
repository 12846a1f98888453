FROM registry.fedoraproject.org/fedora:41
LABEL name="fedora/nonl" version="1" com.redhat.component="nonl-container"
CMD ["/bin/true"]