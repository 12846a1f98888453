FROM quay.io/fedora/s2i-core:41
ENV NODEJS_VERSION=20 \
    NPM_RUN=start \
    NAME=nodejs \
    SUMMARY="Platform for building and running Node.js $NODEJS_VERSION applications"
LABEL summary="$SUMMARY" \
      io.k8s.description="$SUMMARY" \
      io.k8s.display-name="Node.js $NODEJS_VERSION" \
      io.openshift.tags="builder,$NAME,${NAME}${NODEJS_VERSION}" \
      com.redhat.component="$NAME-$NODEJS_VERSION-container" \
      name="fedora/$NAME-$NODEJS_VERSION" \
      version="$NODEJS_VERSION" \
      help="For more information visit https://github.com/sclorg/s2i-${NAME}-container"
RUN INSTALL_PKGS="nodejs npm nodejs-nodemon" && \
    dnf install -y --setopt=tsflags=nodocs $INSTALL_PKGS && \
    rpm -V $INSTALL_PKGS && \
    dnf -y clean all --enablerepo='*'
COPY ./s2i/bin/ $STI_SCRIPTS_PATH
USER 1001
CMD $STI_SCRIPTS_PATH/usage
