#!/usr/bin/env bash
# Join the wheelfarm as a volunteer worker on macOS (arm64 or x86_64).
#
#   WHEELFARM_WORKER_PASSWORD=... ./join-macos.sh --master HOST:PORT --name NAME \
#       --admin "Your Name <you@example.org>"
#
# Without WHEELFARM_WORKER_PASSWORD (or --password-file) it asks for the password.
# Safe to run again: it updates the venv, the worker's configuration and the launchd
# agent, and restarts the worker.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
master="${WHEELFARM_MASTER:-}"
name="${WHEELFARM_WORKER_NAME:-}"
dir="${WHEELFARM_WORKER_DIR:-$HOME/wheelfarm-worker}"
admin="${WHEELFARM_WORKER_ADMIN:-}"
python="${WHEELFARM_WORKER_PYTHON:-python3}"
password_file=""
service=1

usage() {
    cat <<USAGE
usage: $0 --master HOST:PORT --name NAME [options]

  --master HOST:PORT     the farm master's worker port   (or WHEELFARM_MASTER)
  --name NAME            this worker's name in workers.yaml (or WHEELFARM_WORKER_NAME)
  --admin "NAME <MAIL>"  who runs this machine (or WHEELFARM_WORKER_ADMIN)
  --dir DIR              where the venv and worker live (default ~/wheelfarm-worker)
  --python PYTHON        interpreter for the worker's venv (default python3, 3.11+)
  --password-file FILE   read the password from FILE (else WHEELFARM_WORKER_PASSWORD,
                         else a prompt)
  --no-service           do not install a launchd agent; start the worker directly
USAGE
}

while [ $# -gt 0 ]; do
    case "$1" in
        --master) master="$2"; shift 2 ;;
        --name) name="$2"; shift 2 ;;
        --admin) admin="$2"; shift 2 ;;
        --dir) dir="$2"; shift 2 ;;
        --python) python="$2"; shift 2 ;;
        --password-file) password_file="$2"; shift 2 ;;
        --no-service) service=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "join-macos.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

die() { echo "join-macos.sh: $*" >&2; exit 1; }
say() { echo "join-macos.sh: $*"; }

[ -n "$master" ] || die "give --master HOST:PORT (or set WHEELFARM_MASTER)"
[ -n "$name" ] || die "give --name NAME (or set WHEELFARM_WORKER_NAME)"
[[ "$master" =~ ^[^[:space:]/]+:[0-9]+$ ]] || die "--master must be HOST:PORT, not '$master'"
[[ "$name" =~ ^[a-z0-9][a-z0-9-]{0,62}$ ]] || die "'$name' is not a valid worker name"
[ "$(uname -s)" = Darwin ] || die "this script is for macOS; see join-linux.sh, join-windows.ps1"

if [ -n "$password_file" ]; then
    WHEELFARM_WORKER_PASSWORD="$(cat "$password_file")"
elif [ -z "${WHEELFARM_WORKER_PASSWORD:-}" ]; then
    [ -t 0 ] || die "no password: set WHEELFARM_WORKER_PASSWORD or give --password-file"
    read -r -s -p "Password for worker $name (from the farm's operators): " WHEELFARM_WORKER_PASSWORD
    echo
fi
[ -n "$WHEELFARM_WORKER_PASSWORD" ] || die "the password is empty"
export WHEELFARM_WORKER_PASSWORD

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
venv="$dir/venv"
basedir="$dir/worker"

say "venv in $venv"
"$python" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
    || die "$python must be Python 3.11 or newer (the locked tools are resolved for it)"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
# exactly the locked tools, every file checked against its sha256
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
    -r "$here/requirements.txt"

say "worker $name in $basedir, connecting to $master"
# create-worker gets a placeholder; the password comes from the environment, not argv
"$venv/bin/buildbot-worker" create-worker --quiet --force --relocatable --umask=0o022 \
    --keepalive=60 "$basedir" "$master" "$name" placeholder
"$venv/bin/python" - "$basedir/buildbot.tac" <<'PY'
import os, re, sys
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
line = "passwd = " + repr(os.environ["WHEELFARM_WORKER_PASSWORD"])
text = re.sub(r"^passwd = .*$", lambda _: line, text, count=1, flags=re.M)
fd = os.open(path + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w", encoding="utf-8") as f:
    f.write(text)
os.chmod(path + ".new", 0o600)
os.replace(path + ".new", path)
PY

mkdir -p "$basedir/info"
[ -n "$admin" ] && printf '%s\n' "$admin" > "$basedir/info/admin"
pythons=""
for v in 3.10 3.11 3.12 3.13 3.14; do
    if command -v "python$v" >/dev/null 2>&1 && "python$v" -c '' >/dev/null 2>&1; then
        pythons="$pythons $v"
    fi
done
{
    echo "os: macOS $(sw_vers -productVersion)"
    echo "arch: $(uname -m)"
    echo "cpus: $(sysctl -n hw.ncpu)"
    echo "pythons:${pythons:- none}"
} > "$basedir/info/host"
[ -n "$pythons" ] || say "warning: no python3.10 .. python3.14 on PATH: this worker cannot build"

if [ "$service" = 0 ]; then
    export PATH="$venv/bin:$PATH"
    if [ -f "$basedir/twistd.pid" ] && kill -0 "$(cat "$basedir/twistd.pid")" 2>/dev/null; then
        "$venv/bin/buildbot-worker" restart --quiet "$basedir"
    else
        "$venv/bin/buildbot-worker" start --quiet "$basedir"
    fi
    say "worker started (no service installed); stop it with: $venv/bin/buildbot-worker stop $basedir"
    exit 0
fi

# A launchd agent of the logged-in user: it starts at login and is restarted if it dies.
label="org.wheelfarm.worker.$name"
plist="$HOME/Library/LaunchAgents/$label.plist"
mkdir -p "$(dirname "$plist")"
# Homebrew's and python.org's Pythons, and the venv's tools, on PATH
path="$venv/bin:/opt/homebrew/bin:/usr/local/bin:/Library/Frameworks/Python.framework/Versions/Current/bin:/usr/bin:/bin"
cat > "$plist" <<PLIST
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key><string>$label</string>
  <key>ProgramArguments</key>
  <array>
    <string>$venv/bin/buildbot-worker</string>
    <string>start</string>
    <string>--nodaemon</string>
    <string>$basedir</string>
  </array>
  <key>WorkingDirectory</key><string>$basedir</string>
  <key>EnvironmentVariables</key>
  <dict><key>PATH</key><string>$path</string></dict>
  <key>RunAtLoad</key><true/>
  <key>KeepAlive</key><true/>
  <key>ThrottleInterval</key><integer>30</integer>
  <key>StandardOutPath</key><string>$dir/launchd.log</string>
  <key>StandardErrorPath</key><string>$dir/launchd.log</string>
</dict>
</plist>
PLIST
plutil -lint "$plist" >/dev/null
domain="gui/$(id -u)"
# bootout first so a re-run loads the new plist instead of failing on the old one
launchctl bootout "$domain/$label" 2>/dev/null || true
launchctl bootstrap "$domain" "$plist"
launchctl enable "$domain/$label"
say "installed and started $plist; logs in $basedir/twistd.log"
