ARG REGISTRY=127.0.0.1:5000
ARG IMAGE=osbs-dockerfile-test/busybox
FROM ${REGISTRY}/${IMAGE}:${TAG:-1}
ARG IMAGE
ENV APP=demo
LABEL name="osbs/$APP" version="${VERSION:-3}" com.redhat.component="$APP-container" from="$IMAGE"
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo $APP"]
