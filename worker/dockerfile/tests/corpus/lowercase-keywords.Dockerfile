from registry.fedoraproject.org/fedora:41 as base
run dnf -y install vim-minimal && dnf clean all
label name="fedora/lower" version="1" com.redhat.component="lower-container"
From base
Cmd ["vi"]
