# syntax=docker/dockerfile:1.7
FROM registry.fedoraproject.org/fedora:41
LABEL name="fedora/heredoc" version="1" com.redhat.component="heredoc-container"
RUN <<EOF
set -eux
dnf install -y nginx
dnf clean all
EOF
RUN <<-"SCRIPT" bash
	echo "literal $HOME"
	SCRIPT
COPY <<CONF /etc/nginx/conf.d/default.conf
server {
    listen 8080;
    root /usr/share/nginx/html;
}
CONF
RUN cat <<A >/a.txt && cat <<B >/b.txt
first
A
second
B
CMD ["nginx", "-g", "daemon off;"]
