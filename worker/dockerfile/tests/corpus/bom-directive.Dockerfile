# syntax=docker/dockerfile:1
# escape=\
FROM registry.fedoraproject.org/fedora:41
LABEL name="fedora/bom" version="1" com.redhat.component="bom-container"
