FROM registry.fedoraproject.org/fedora:41
LABEL name="fedora/python-onbuild" version="3.12" com.redhat.component="python-onbuild-container"
RUN dnf install -y python3-pip && dnf clean all
WORKDIR /app
ONBUILD COPY requirements.txt /app/
ONBUILD RUN pip install --no-cache-dir -r requirements.txt
ONBUILD USER 1001
ONBUILD LABEL child=yes
CMD ["python3"]
