FROM 127.0.0.1:5000/osbs-dockerfile-test/busybox:1
LABEL name="osbs/engine-basic" \
      version="1.0" \
      com.redhat.component="engine-basic-container" \
      quoted="it's \"here\" \\ \$NOT"
RUN echo hello > /hello.txt && \
    cat /etc/yum.repos.d/*.repo > /seen-repos.txt
CMD ["cat", "/hello.txt"]
