FROM quay.io/fedora/python-312:latest
LABEL name="fedora/python-app" version="1.0" com.redhat.component="python-app-container"
COPY --chown=1001:0 requirements.txt ./
RUN --mount=type=cache,target=/opt/app-root/src/.cache/pip \
    pip install -r requirements.txt
COPY --chown=1001:0 . .
CMD ["gunicorn", "app:app", "--bind", "0.0.0.0:8080"]
