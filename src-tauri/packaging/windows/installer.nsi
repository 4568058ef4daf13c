; labflash's Windows installer (makensis 3; built by src-tauri/scripts/package-windows.sh).
; Installs for every user, into Program Files: the desktop app, the command line, a Start-menu
; entry and an uninstaller, and WebView2 (the window's engine) when the machine does not have it.
; Installing asks for administrator rights once; labflash itself runs as the user and asks again
; (one UAC prompt) only to write a drive, through the labflash.exe installed here. Program Files
; is where only administrators may change that program: labflash elevates it from nowhere else.
;
; Defines given by the build script: VERSION, STAGE (the folder holding labflash-gui.exe,
; labflash.exe and WebView2Loader.dll, which the MinGW build of the app loads), ICON, OUTFILE.

Unicode true
; A 64-bit installer for a 64-bit program (and Wine without its 32-bit half runs it).
Target amd64-unicode
SetCompressor /SOLID lzma
RequestExecutionLevel admin
ManifestDPIAware true

!include "MUI2.nsh"
!include "LogicLib.nsh"
!include "x64.nsh"

!define APP "labflash"
!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\${APP}"
; The WebView2 runtime's client id (Microsoft's "Distribute your app and the WebView2 Runtime").
!define WEBVIEW2_KEY "Microsoft\EdgeUpdate\Clients\{F3017226-FE2A-4295-8BDF-00C3A9A7E4C5}"
; Microsoft's Evergreen bootstrapper (a small program that downloads and installs the runtime).
!define WEBVIEW2_BOOTSTRAPPER "https://go.microsoft.com/fwlink/p/?LinkId=2124703"

Name "${APP}"
OutFile "${OUTFILE}"
InstallDir "$PROGRAMFILES64\${APP}"
BrandingText "${APP} ${VERSION}"
VIProductVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "${APP}"
VIAddVersionKey "FileDescription" "${APP} installer"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "LegalCopyright" "Apache-2.0"

!define MUI_ICON "${ICON}"
!define MUI_UNICON "${ICON}"

!insertmacro MUI_PAGE_WELCOME
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

Function .onInit
  ${IfNot} ${RunningX64}
    MessageBox MB_ICONSTOP "labflash needs 64-bit Windows." /SD IDOK
    Abort
  ${EndIf}
  SetShellVarContext all
  SetRegView 64
FunctionEnd

Function un.onInit
  SetShellVarContext all
  SetRegView 64
FunctionEnd

Section "labflash" Main
  SectionIn RO
  SetOutPath "$INSTDIR"
  File "${STAGE}\labflash-gui.exe"
  File "${STAGE}\WebView2Loader.dll"
  File "${STAGE}\labflash.exe"
  WriteUninstaller "$INSTDIR\uninstall.exe"

  CreateShortCut "$SMPROGRAMS\${APP}.lnk" "$INSTDIR\labflash-gui.exe" "" "$INSTDIR\labflash-gui.exe" 0

  WriteRegStr HKLM "${UNINSTALL_KEY}" "DisplayName" "${APP}"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "Publisher" "${APP}"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "DisplayIcon" "$INSTDIR\labflash-gui.exe"
  WriteRegStr HKLM "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKLM "${UNINSTALL_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKLM "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKLM "${UNINSTALL_KEY}" "NoRepair" 1

  Call WebView2
SectionEnd

; The window needs the WebView2 runtime (Windows 11 has it; most Windows 10 machines got it with
; Edge). When neither the machine nor this user has it, Microsoft's bootstrapper is downloaded
; and run, once its Authenticode signature is Microsoft's; when that cannot be done, the user is
; told where to get it (the command line works without it).
Function WebView2
  SetRegView 64
  ReadRegStr $0 HKLM "SOFTWARE\WOW6432Node\${WEBVIEW2_KEY}" "pv"
  ReadRegStr $1 HKCU "Software\${WEBVIEW2_KEY}" "pv"
  ${If} $0 != ""
  ${AndIf} $0 != "0.0.0.0"
    DetailPrint "WebView2 $0 is installed."
    Return
  ${EndIf}
  ${If} $1 != ""
  ${AndIf} $1 != "0.0.0.0"
    DetailPrint "WebView2 $1 is installed for this user."
    Return
  ${EndIf}
  DetailPrint "Downloading Microsoft's WebView2 installer..."
  StrCpy $2 "$TEMP\MicrosoftEdgeWebview2Setup.exe"
  Delete "$2"
  nsExec::ExecToLog 'powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -Command "$$ErrorActionPreference = $\'Stop$\'; Invoke-WebRequest -UseBasicParsing -Uri $\'${WEBVIEW2_BOOTSTRAPPER}$\' -OutFile $\'$2$\'; $$s = Get-AuthenticodeSignature $\'$2$\'; if ($$s.Status -ne $\'Valid$\' -or $$s.SignerCertificate.Subject -notmatch $\'O=Microsoft Corporation$\') { Remove-Item $\'$2$\'; exit 3 }"'
  Pop $3
  ${If} $3 != 0
  ${OrIfNot} ${FileExists} "$2"
    DetailPrint "WebView2 could not be downloaded and checked (code $3)."
    MessageBox MB_ICONEXCLAMATION "labflash's window needs Microsoft's WebView2 runtime, which could not be downloaded now. Install it from https://developer.microsoft.com/microsoft-edge/webview2/ and start labflash again. The command line (labflash.exe) works without it." /SD IDOK
    Return
  ${EndIf}
  DetailPrint "Installing WebView2..."
  ExecWait '"$2" /silent /install' $4
  Delete "$2"
  DetailPrint "The WebView2 installer finished (code $4)."
FunctionEnd

Section "Uninstall"
  Delete "$INSTDIR\labflash-gui.exe"
  Delete "$INSTDIR\WebView2Loader.dll"
  Delete "$INSTDIR\labflash.exe"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  Delete "$SMPROGRAMS\${APP}.lnk"
  DeleteRegKey HKLM "${UNINSTALL_KEY}"
SectionEnd
