#!/usr/bin/env bash
# Installs the Debian packages that the test Slurm cluster (tests/slurm_cluster.py) needs:
# slurmctld, slurmd, slurm-client and munge, plus slurmdbd and mariadb-server for accounting.
# Runs as root; idempotent, and returns at once when everything is already installed.
# No daemon is enabled or started: the tests start their own, under a temp dir.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install_slurm: all packages present (${PACKAGES[*]})"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "install_slurm: must run as root to install: ${missing[*]}" >&2
  exit 1
fi

echo "install_slurm: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -q -y -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef
     -o Dpkg::Options::=--force-confold)

# Keep the packages' maintainer scripts from starting daemons (there is no systemd here, but an
# init script could still be run): a policy-rc.d that refuses every start, removed afterwards
# unless one was already there.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  own_policy=1
fi
cleanup() { if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

"${APT[@]}" update
"${APT[@]}" install --no-install-recommends "${missing[@]}"

for cmd in slurmctld slurmd slurmdbd sbatch munged mungekey mariadbd mariadb-install-db; do
  command -v "$cmd" >/dev/null || { echo "install_slurm: $cmd missing after install" >&2; exit 1; }
done
echo "install_slurm: done"
