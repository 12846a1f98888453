FROM registry.fedoraproject.org/fedora:40
MAINTAINER Fedora Container SIG <container-sig@lists.fedoraproject.org>

LABEL BZComponent="cockpit-container" \
      Name="fedora/cockpit" \
      Version="0.1" \
      Release="5" \
      Architecture="x86_64" \
      Vendor="Fedora Project"

RUN dnf -y install cockpit-ws && dnf clean all

ADD atomic-install /container/atomic-install
RUN chmod 775 /container/atomic-install

LABEL INSTALL="/usr/bin/docker run -ti --rm --privileged -v /:/host IMAGE /container/atomic-install"
CMD ["/usr/libexec/cockpit-ws"]
