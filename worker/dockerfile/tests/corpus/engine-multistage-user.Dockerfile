FROM 127.0.0.1:5000/osbs-dockerfile-test/busybox:1 AS build
RUN mkdir -p /out && echo built > /out/artifact && ls /etc/yum.repos.d/ > /out/repos
USER nobody

FROM build AS check
RUN test "$(id -u)" = 65534

FROM 127.0.0.1:5000/osbs-dockerfile-test/busybox:1
COPY --from=build /out /out
COPY --from=1 /out/artifact /out/again
USER nobody
LABEL name="osbs/engine-multistage" version="2" com.redhat.component="engine-multistage-container"
ENTRYPOINT ["cat"]
CMD ["/out/artifact"]
