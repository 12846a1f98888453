FROM registry.fedoraproject.org/fedora:41
LABEL name="fedora/quoting" version="1" com.redhat.component="quoting-container"
ENTRYPOINT [ "/bin/sh", "-c", "exec \"$0\" \"$@\"" ]
CMD ["echo", "it's \"quoted\"", "back\\slash", "$HOME", "unicode ✓", "tab\there"]
HEALTHCHECK --interval=30s CMD ["curl", "-f", "http://localhost/"]
