#!/usr/bin/env bash
# Installs what the test suite needs when it is missing. Idempotent: a second run installs
# nothing and asks no registry. Versions are pinned so that a CI run and a developer machine
# test against the same peers.
set -euo pipefail

# Debian packages: name=version. Mosquitto is the broker the tests start on a free loopback port.
debs=(
	"mosquitto=2.0.11-1.2+deb12u2"
	# qemu-user runs the arm and arm64 builds in the cross-build smoke test.
	"qemu-user-static=1:7.2+dfsg-7+deb12u18+b3"
	# An independent Modbus server (pymodbus) and client (mbpoll) beside plcsim.
	"python3-pymodbus=3.0.0-7"
	"mbpoll=1.4.11+dfsg-2"
)

missing=()
for spec in "${debs[@]}"; do
	name=${spec%%=*}
	want=${spec#*=}
	have=$(dpkg-query -W -f='${Version}' "$name" 2>/dev/null || true)
	if [ "$have" != "$want" ]; then
		missing+=("$spec")
	fi
done

if [ ${#missing[@]} -gt 0 ]; then
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null || { echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
		sudo="sudo"
	fi
	echo "deps: installing ${missing[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "deps: ok"
