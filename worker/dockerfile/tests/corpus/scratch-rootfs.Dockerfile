FROM scratch
ADD fedora-41-x86_64.tar.xz /
LABEL name="fedora" \
      version="41" \
      com.redhat.component="fedora-container" \
      license="MIT" \
      vendor="Fedora Project"
ENV DISTTAG=f41container FGC=f41 FBR=f41
CMD ["/bin/bash"]
