FROM registry.fedoraproject.org/fedora:41
ENV NAME=mariadb VERSION=10.11 \
    SUMMARY="MariaDB server"
LABEL summary="$SUMMARY" \
      name="$FGC/$NAME" \
      version="$VERSION" \
      com.redhat.component="$NAME-container" \
      usage="docker run -d -e MYSQL_USER=user $FGC/$NAME"
RUN dnf install -y mariadb-server && dnf clean all
USER 27
