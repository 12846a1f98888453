ARG REGISTRY=registry.fedoraproject.org
ARG BASE=${REGISTRY}/fedora
ARG TAG
FROM ${BASE}:${TAG:-41}
ARG TAG
LABEL name="fedora/argbase" \
      version="${TAG:-41}" \
      com.redhat.component="argbase-container"
RUN echo built on ${TAG:-41}
