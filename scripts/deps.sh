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
	# The status page's browser test (cmd/floorlink/browser): Debian's Chromium, driven by
	# playwright-core below, and a Korean font so that its screenshots of ?lang=ko are legible.
	# Debian keeps only the newest chromium of bookworm-security: when it moves on, this pin
	# fails to install and must follow (apt-cache policy chromium).
	"chromium=156.0.8078.108-1~deb12u1"
	"chromium-common=156.0.8078.108-1~deb12u1"
	"fonts-nanum=20200506-1"
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

# npm packages of the browser test, exactly as scripts/browser/package-lock.json pins them,
# installed with `npm ci` into .deps/browser (git-ignored). The lock file copied there last is
# the stamp: while it equals the committed one, nothing is installed and npm is not asked.
root=$(cd "$(dirname "$0")/.." && pwd)
src="$root/scripts/browser"
dst="$root/.deps/browser"
if ! cmp -s "$src/package-lock.json" "$dst/installed-lock.json" || [ ! -f "$dst/node_modules/playwright-core/package.json" ]; then
	command -v npm >/dev/null || { echo "deps: npm not found: install Node.js 20 or later with npm" >&2; exit 1; }
	echo "deps: installing npm packages of scripts/browser into .deps/browser"
	mkdir -p "$dst"
	rm -f "$dst/installed-lock.json"
	cp "$src/package.json" "$src/package-lock.json" "$dst/"
	# --ignore-scripts: playwright-core runs no install script, and no browser is downloaded;
	# the tests use Debian's /usr/bin/chromium.
	(cd "$dst" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
	cp "$src/package-lock.json" "$dst/installed-lock.json"
fi
# npm sparkplug-payload, the independent Sparkplug B decoder of agent/publish's tests, the same
# way into .deps/sparkplug from scripts/sparkplug's lock.
src="$root/scripts/sparkplug"
dst="$root/.deps/sparkplug"
if ! cmp -s "$src/package-lock.json" "$dst/installed-lock.json" || [ ! -f "$dst/node_modules/sparkplug-payload/package.json" ]; then
	command -v npm >/dev/null || { echo "deps: npm not found: install Node.js 20 or later with npm" >&2; exit 1; }
	echo "deps: installing npm packages of scripts/sparkplug into .deps/sparkplug"
	mkdir -p "$dst"
	rm -f "$dst/installed-lock.json"
	cp "$src/package.json" "$src/package-lock.json" "$dst/"
	(cd "$dst" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
	cp "$src/package-lock.json" "$dst/installed-lock.json"
fi
# npm node-opcua, the independent OPC UA server of drivers/opcua's tests (scripts/opcua/server.js:
# security, users, node removal), the same way into .deps/opcua from scripts/opcua's lock.
src="$root/scripts/opcua"
dst="$root/.deps/opcua"
if ! cmp -s "$src/package-lock.json" "$dst/installed-lock.json" || [ ! -f "$dst/node_modules/node-opcua/package.json" ]; then
	command -v npm >/dev/null || { echo "deps: npm not found: install Node.js 20 or later with npm" >&2; exit 1; }
	echo "deps: installing npm packages of scripts/opcua into .deps/opcua"
	mkdir -p "$dst"
	rm -f "$dst/installed-lock.json"
	cp "$src/package.json" "$src/package-lock.json" "$dst/"
	(cd "$dst" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
	cp "$src/package-lock.json" "$dst/installed-lock.json"
fi
echo "deps: ok"
