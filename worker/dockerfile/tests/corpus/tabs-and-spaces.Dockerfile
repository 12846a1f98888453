FROM	registry.fedoraproject.org/fedora:41	
LABEL name="fedora/tabs" \  	
	version="1" \	
	com.redhat.component="tabs-container"
  RUN   echo   indented  
	CMD	["true"]
