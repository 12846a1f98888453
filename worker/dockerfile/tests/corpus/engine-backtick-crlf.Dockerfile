# escape=`
FROM 127.0.0.1:5000/osbs-dockerfile-test/busybox:1
LABEL name="osbs/engine-backtick" `
      version="1" `
      com.redhat.component="engine-backtick-container" `
      path="C:\dir\" `
      tick="a``b`"c"
RUN echo one `
    two > /words
CMD ["cat", "/words"]
