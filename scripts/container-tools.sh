#!/usr/bin/env bash
# What building and running the stack's images needs on this kind of machine, idempotent:
# podman with runc (crun refuses the machine's cgroup v1 hybrid mode), debootstrap, and a local
# Debian/Python base image, since images cannot be pulled from public registries here.
# Elsewhere (Docker proper), none of this is needed: the Dockerfiles default to public images.
set -euo pipefail
BASE_IMAGE=${BASE_IMAGE:-localhost/debian-python:bookworm}

need=()
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing: ${need[*]} (run as root, or: apt-get install ${need[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" uidmap slirp4netns fuse-overlayfs >/dev/null
fi

# The default ulimits cannot be set here, and crun refuses cgroup v1: runc instead.
conf=/etc/containers/containers.conf
if ! grep -q 'runtime = "runc"' "$conf" 2>/dev/null; then
  mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n' >"$conf"
fi

if ! podman image exists "$BASE_IMAGE"; then
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
  mirror=${mirror:-http://deb.debian.org/debian}
  root=$(mktemp -d)
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates,curl \
    bookworm "$root" "$mirror" >/dev/null
  tar -C "$root" -c . | podman import - "$BASE_IMAGE" >/dev/null
  rm -rf "$root"
fi
echo "podman $(podman --version | awk '{print $3}'), base image $BASE_IMAGE"
