# Join the wheelfarm as a volunteer worker on Windows (amd64).
#
#   $env:WHEELFARM_WORKER_PASSWORD = "..."   # or leave it unset to be asked
#   .\join-windows.ps1 -Master HOST:PORT -Name NAME -Admin "Your Name <you@example.org>"
#
# Run it in an elevated PowerShell (the scheduled task starts at boot). Safe to run
# again: it updates the venv, the worker's configuration and the task, and restarts it.
[CmdletBinding()]
param(
    [string]$Master = $env:WHEELFARM_MASTER,
    [string]$Name = $env:WHEELFARM_WORKER_NAME,
    [string]$Admin = $env:WHEELFARM_WORKER_ADMIN,
    [string]$Dir = $(if ($env:WHEELFARM_WORKER_DIR) { $env:WHEELFARM_WORKER_DIR } else { Join-Path $HOME "wheelfarm-worker" }),
    [string]$Python = $(if ($env:WHEELFARM_WORKER_PYTHON) { $env:WHEELFARM_WORKER_PYTHON } else { "py" }),
    [string]$PasswordFile = "",
    [switch]$NoService
)
$ErrorActionPreference = "Stop"

function Die([string]$Message) { Write-Error "join-windows.ps1: $Message"; exit 1 }
function Say([string]$Message) { Write-Host "join-windows.ps1: $Message" }

if (-not $Master) { Die "give -Master HOST:PORT (or set WHEELFARM_MASTER)" }
if (-not $Name) { Die "give -Name NAME (or set WHEELFARM_WORKER_NAME)" }
if ($Master -notmatch '^[^\s/]+:[0-9]+$') { Die "-Master must be HOST:PORT, not '$Master'" }
if ($Name -cnotmatch '^[a-z0-9][a-z0-9-]{0,62}$') { Die "'$Name' is not a valid worker name" }

if ($PasswordFile) {
    $env:WHEELFARM_WORKER_PASSWORD = (Get-Content -Raw $PasswordFile).Trim()
} elseif (-not $env:WHEELFARM_WORKER_PASSWORD) {
    $secure = Read-Host -AsSecureString "Password for worker $Name (from the farm's operators)"
    $env:WHEELFARM_WORKER_PASSWORD = [Runtime.InteropServices.Marshal]::PtrToStringBSTR(
        [Runtime.InteropServices.Marshal]::SecureStringToBSTR($secure))
}
if (-not $env:WHEELFARM_WORKER_PASSWORD) { Die "the password is empty" }

$here = Split-Path -Parent $MyInvocation.MyCommand.Path
New-Item -ItemType Directory -Force -Path $Dir | Out-Null
$Dir = (Resolve-Path $Dir).Path
$venv = Join-Path $Dir "venv"
$basedir = Join-Path $Dir "worker"
$vpython = Join-Path $venv "Scripts\python.exe"
$bbw = Join-Path $venv "Scripts\buildbot-worker.exe"

Say "venv in $venv"
& $Python -c "import sys; assert sys.version_info >= (3, 11), sys.version"
if ($LASTEXITCODE) { Die "$Python must be Python 3.11 or newer (the locked tools are resolved for it)" }
if (-not (Test-Path $vpython)) { & $Python -m venv $venv; if ($LASTEXITCODE) { Die "venv failed" } }
# exactly the locked tools, every file checked against its sha256
& $vpython -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r (Join-Path $here "requirements.txt")
if ($LASTEXITCODE) { Die "pip install failed" }

Say "worker $Name in $basedir, connecting to $Master"
# create-worker gets a placeholder; the password comes from the environment, not argv
& $bbw create-worker --quiet --force --relocatable --keepalive=60 $basedir $Master $Name placeholder
if ($LASTEXITCODE) { Die "create-worker failed" }
$fix = @'
import os, re, sys
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
line = "passwd = " + repr(os.environ["WHEELFARM_WORKER_PASSWORD"])
text = re.sub(r"^passwd = .*$", lambda _: line, text, count=1, flags=re.M)
open(path, "w", encoding="utf-8").write(text)
'@
& $vpython -c $fix (Join-Path $basedir "buildbot.tac")
if ($LASTEXITCODE) { Die "could not write the password into buildbot.tac" }
# only this user, SYSTEM and Administrators may read the password
$tac = Join-Path $basedir "buildbot.tac"
icacls $tac /inheritance:r /grant:r "${env:USERNAME}:F" "SYSTEM:F" "Administrators:F" | Out-Null

$info = Join-Path $basedir "info"
New-Item -ItemType Directory -Force -Path $info | Out-Null
if ($Admin) { Set-Content -Encoding utf8 -Path (Join-Path $info "admin") -Value $Admin }
$pythons = @()
foreach ($v in "3.10", "3.11", "3.12", "3.13", "3.14") {
    # the py launcher knows every installed python.org Python
    & py "-$v" -c "" 2>$null
    if ($LASTEXITCODE -eq 0) { $pythons += $v }
}
$os = Get-CimInstance Win32_OperatingSystem
Set-Content -Encoding utf8 -Path (Join-Path $info "host") -Value @(
    "os: $($os.Caption) $($os.Version)",
    "arch: $env:PROCESSOR_ARCHITECTURE",
    "cpus: $env:NUMBER_OF_PROCESSORS",
    "pythons: $(if ($pythons) { $pythons -join ' ' } else { 'none' })"
)
if (-not $pythons) { Say "warning: no Python 3.10 .. 3.14 found by py: this worker cannot build" }

# The venv's tools first on PATH, for the worker and the builds it runs.
$run = Join-Path $Dir "run-worker.cmd"
Set-Content -Encoding ascii -Path $run -Value @(
    "@echo off",
    "set PATH=$venv\Scripts;%PATH%",
    "`"$bbw`" start --nodaemon `"$basedir`""
)

if ($NoService) {
    $env:PATH = "$venv\Scripts;$env:PATH"
    Start-Process -WindowStyle Hidden -FilePath $run
    Say "worker started (no service installed); stop it by ending its process"
    exit 0
}

# A scheduled task that starts at boot, runs whether or not anyone is logged in, and
# restarts the worker if it stops.
$task = "wheelfarm-worker-$Name"
$action = New-ScheduledTaskAction -Execute $run -WorkingDirectory $basedir
$trigger = New-ScheduledTaskTrigger -AtStartup
$principal = New-ScheduledTaskPrincipal -UserId $env:USERNAME -LogonType S4U -RunLevel Limited
$settings = New-ScheduledTaskSettingsSet -RestartCount 999 -RestartInterval (New-TimeSpan -Minutes 1) `
    -ExecutionTimeLimit ([TimeSpan]::Zero) -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries
if (Get-ScheduledTask -TaskName $task -ErrorAction SilentlyContinue) {
    Stop-ScheduledTask -TaskName $task -ErrorAction SilentlyContinue
    Unregister-ScheduledTask -TaskName $task -Confirm:$false
}
Register-ScheduledTask -TaskName $task -Action $action -Trigger $trigger -Principal $principal `
    -Settings $settings -Description "wheelfarm worker $Name" | Out-Null
Start-ScheduledTask -TaskName $task
Say "installed and started the scheduled task $task; logs in $basedir\twistd.log"
