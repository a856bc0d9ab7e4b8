#!/usr/bin/env bash
# Join the wheelfarm as a volunteer worker on Linux (x86_64 or aarch64).
#
#   WHEELFARM_WORKER_PASSWORD=... ./join-linux.sh --master HOST:PORT --name NAME \
#       --admin "Your Name <you@example.org>"
#
# Without WHEELFARM_WORKER_PASSWORD (or --password-file) it asks for the password,
# so it never appears in your shell history. Safe to run again: it updates the
# venv, the worker's configuration and the service, and restarts the worker.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
master="${WHEELFARM_MASTER:-}"
name="${WHEELFARM_WORKER_NAME:-}"
dir="${WHEELFARM_WORKER_DIR:-$HOME/wheelfarm-worker}"
admin="${WHEELFARM_WORKER_ADMIN:-}"
python="${WHEELFARM_WORKER_PYTHON:-python3}"
password_file=""
run_as=""
service=1
container=""
emulate=""

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
  --run-as USER          as root: run the service as USER (recommended)
  --container podman     build in the platform's image (installs podman as root)
  --emulate aarch64      as root: also offer linux-aarch64 on this x86_64 machine, by
                         QEMU emulation (installs qemu-user-static, registers it with
                         binfmt_misc, makes the arm64 build image); implies --container
  --no-service           do not install a service; start the worker directly (tests)
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
        --run-as) run_as="$2"; shift 2 ;;
        --no-service) service=0; shift ;;
        --container) container="$2"; shift 2 ;;
        --emulate) emulate="$2"; container="${container:-podman}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "join-linux.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

die() { echo "join-linux.sh: $*" >&2; exit 1; }
say() { echo "join-linux.sh: $*"; }
apt_install() {
    [ "$(id -u)" = 0 ] || die "install $* (as root), then run this again"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "$@" >/dev/null \
        || { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; }
}

[ -n "$master" ] || die "give --master HOST:PORT (or set WHEELFARM_MASTER)"
[ -n "$name" ] || die "give --name NAME (or set WHEELFARM_WORKER_NAME)"
[[ "$master" =~ ^[^[:space:]/]+:[0-9]+$ ]] || die "--master must be HOST:PORT, not '$master'"
[[ "$name" =~ ^[a-z0-9][a-z0-9-]{0,62}$ ]] || die "'$name' is not a valid worker name"
[ "$(uname -s)" = Linux ] || die "this script is for Linux; see join-macos.sh, join-windows.ps1"
[ -z "$container" ] || [ "$container" = podman ] || die "--container: only podman is set up here"
[ -z "$emulate" ] || [ "$emulate" = aarch64 ] || die "--emulate: only aarch64 is offered"
[ -z "$emulate" ] || [ "$(uname -m)" = x86_64 ] || die "--emulate aarch64 is for x86_64 hosts"
[ -z "$emulate" ] || [ "$(id -u)" = 0 ] || die "--emulate needs root (binfmt_misc, debootstrap)"

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

# the sandbox of every build (bubblewrap) and the user-mode network of the few phases
# that need one (slirp4netns): docs/volunteers/isolation.md
if ! command -v bwrap >/dev/null || ! command -v slirp4netns >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt_install bubblewrap slirp4netns
    else
        say "warning: install bubblewrap and slirp4netns (as root): without bubblewrap this"
        say "worker refuses untrusted builds unless its entry says none-i-accept-the-risk"
    fi
fi

containers_conf=""
if [ -n "$container" ]; then
    command -v podman >/dev/null && command -v runc >/dev/null || apt_install podman runc
    # podman's settings for hosts where crun or the default ulimits fail (see the file)
    containers_conf="$dir/containers.conf"
    cp "$here/podman/containers.conf" "$containers_conf"
    export CONTAINERS_CONF="$containers_conf"
fi
if [ -n "$emulate" ]; then
    command -v qemu-aarch64-static >/dev/null && command -v debootstrap >/dev/null \
        || apt_install qemu-user-static binfmt-support debootstrap
    [ -e /proc/sys/fs/binfmt_misc/register ] \
        || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
    say "making the linux-aarch64 build image (minutes the first time)"
    image="$("$python" "$here/images/make_image.py" --suite bookworm --arch arm64 \
        --python 3.11 --name localhost/wheelfarm-linux-aarch64 | tail -n 1)"
    say "image $image: the master's build_images must name it for linux-aarch64"
    say "declare in workers.yaml: platform: linux-aarch64, container: podman, emulated: true"
fi

say "worker $name in $basedir, connecting to $master"
# The password is not put on a command line: create-worker gets a placeholder, which
# the venv's Python then replaces with the password from the environment.
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

# What the master's UI shows about this worker.
mkdir -p "$basedir/info"
[ -n "$admin" ] && printf '%s\n' "$admin" > "$basedir/info/admin"
pythons=""
for v in 3.10 3.11 3.12 3.13 3.14; do
    # on PATH is not enough: a pyenv shim exists for versions it will not run
    if command -v "python$v" >/dev/null 2>&1 && "python$v" -c '' >/dev/null 2>&1; then
        pythons="$pythons $v"
    fi
done
{
    echo "os: $(uname -s) $(uname -r)"
    [ -r /etc/os-release ] && echo "distribution: $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "arch: $(uname -m)"
    echo "cpus: $(getconf _NPROCESSORS_ONLN)"
    echo "pythons:${pythons:- none}"
    [ -z "$container" ] || echo "container: $container"
    [ -z "$emulate" ] || echo "emulates: linux-$emulate (QEMU)"
} > "$basedir/info/host"
[ -n "$pythons" ] || say "warning: no python3.10 .. python3.14 on PATH: this worker cannot build"

if [ -n "$run_as" ]; then
    [ "$(id -u)" = 0 ] || die "--run-as needs root"
    id -u "$run_as" >/dev/null 2>&1 || die "no user '$run_as' (make one: useradd --system $run_as)"
    chown -R "$run_as:$(id -gn "$run_as")" "$dir"
fi

path="$venv/bin:/usr/local/bin:/usr/bin:/bin"
if [ "$service" = 0 ]; then
    as_user=()
    if [ -n "$run_as" ]; then
        # as that user, with its own home for the farm's caches, never root's PATH
        as_user=(runuser -u "$run_as" -- env "HOME=$dir" "PATH=$path")
    else
        export PATH="$venv/bin:$PATH"
    fi
    if [ -f "$basedir/twistd.pid" ] && kill -0 "$(cat "$basedir/twistd.pid")" 2>/dev/null; then
        "${as_user[@]}" "$venv/bin/buildbot-worker" restart --quiet "$basedir"
    else
        "${as_user[@]}" "$venv/bin/buildbot-worker" start --quiet "$basedir"
    fi
    say "worker started (no service installed); stop it with: $venv/bin/buildbot-worker stop $basedir"
    exit 0
fi

unit="wheelfarm-worker-$name.service"
if [ "$(id -u)" = 0 ]; then
    unit_dir=/etc/systemd/system
    systemctl=(systemctl)
    wanted_by=multi-user.target
    [ -n "$run_as" ] || say "warning: builds will run as root; --run-as USER is safer"
else
    unit_dir="$HOME/.config/systemd/user"
    systemctl=(systemctl --user)
    wanted_by=default.target
fi
mkdir -p "$unit_dir"
{
    echo "[Unit]"
    echo "Description=wheelfarm worker $name"
    echo "After=network-online.target"
    echo "Wants=network-online.target"
    echo
    echo "[Service]"
    echo "Type=simple"
    [ -n "$run_as" ] && echo "User=$run_as"
    echo "WorkingDirectory=$basedir"
    echo "Environment=\"PATH=$path\""
    [ -z "$containers_conf" ] || echo "Environment=\"CONTAINERS_CONF=$containers_conf\""
    echo "ExecStart=\"$venv/bin/buildbot-worker\" start --nodaemon \"$basedir\""
    # builds' memory and process limits get a cgroup of their own beside the worker's
    # (systemd 254+ with cgroup v2; elsewhere farmtool sets rlimits instead)
    echo "Delegate=memory pids"
    echo "DelegateSubgroup=worker"
    echo "Restart=always"
    echo "RestartSec=30"
    echo
    echo "[Install]"
    echo "WantedBy=$wanted_by"
} > "$unit_dir/$unit"
"${systemctl[@]}" daemon-reload
"${systemctl[@]}" enable "$unit" >/dev/null
"${systemctl[@]}" restart "$unit"
say "installed and started $unit_dir/$unit"
if [ "$(id -u)" != 0 ]; then
    say "to keep it running while you are logged out: loginctl enable-linger $USER"
fi
say "follow it with: ${systemctl[*]} status $unit; logs in $basedir/twistd.log"
