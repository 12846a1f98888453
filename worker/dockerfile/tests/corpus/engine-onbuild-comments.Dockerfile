FROM 127.0.0.1:5000/osbs-dockerfile-test/busybox:1
# Comments inside continuations are dropped by the builder.
LABEL name="osbs/engine-onbuild" \
# the version
      version="5" \

      com.redhat.component="engine-onbuild-container"
ONBUILD RUN echo child build
ONBUILD LABEL child=yes
RUN echo "x\\" > /x