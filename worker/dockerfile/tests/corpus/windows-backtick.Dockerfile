# escape=`

FROM mcr.microsoft.com/windows/servercore:ltsc2022

LABEL name="windows/app" `
      version="1" `
      com.redhat.component="win-app" `
      path="C:\Program Files\App\"

SHELL ["powershell", "-Command", "$ErrorActionPreference = 'Stop';"]

RUN New-Item -ItemType Directory C:\app ; `
    Set-Content -Path C:\app\hello.txt -Value "hello `"world`""

COPY app.ps1 C:\app\
WORKDIR C:\app
CMD ["powershell", "-File", "C:\\app\\app.ps1"]
