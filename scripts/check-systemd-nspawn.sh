#!/usr/bin/env bash
# Runs deploy/systemd/sockmapd.service under a real systemd as PID 1, where the CI machine has none: a Debian 12
# root with systemd (debootstrap) boots in systemd-nspawn with the host's bpffs bound in, `cmake --install`
# puts sockmapd into it, and a probe unit drives the service as an operator would: start (Type=notify, so
# "active" means READY=1 arrived), /readyz, the capabilities the main process really has, reload, stop. The
# sandboxing options are applied by systemd itself here, which systemd_unit_test cannot do.
#
# Needs root, debootstrap, systemd-nspawn (package systemd-container) and the Debian archive (about 3 minutes
# and 400 MB in a temporary directory). Not run by CI: it downloads packages.
# Usage: scripts/check-systemd-nspawn.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=$(realpath "${1:-build}")
mirror=${SOCKMAPD_DEBIAN_MIRROR:-http://deb.debian.org/debian}

for tool in debootstrap systemd-nspawn; do
  command -v "$tool" > /dev/null || { echo "check-systemd-nspawn: $tool is missing" >&2; exit 1; }
done
[ -x "$build_dir/sockmapd" ] || { echo "check-systemd-nspawn: no $build_dir/sockmapd; build first" >&2; exit 1; }

work=$(mktemp -d /var/tmp/sockmapd-nspawn-XXXXXX)
root="$work/root"
pin_path="/sys/fs/bpf/smd-nspawn-$$"
# With --keep-unit, systemd-nspawn puts the container in a "payload" cgroup and itself in a "supervisor"
# cgroup below this shell's own, in every hierarchy, and leaves both behind (empty) after the container
# powers off.
own_cgroup=$(awk -F: '$1 == "0" { print $3 }' /proc/self/cgroup)
payloads=()
for hierarchy in /sys/fs/cgroup /sys/fs/cgroup/unified /sys/fs/cgroup/systemd; do
  for leftover in payload supervisor; do
    payload="$hierarchy${own_cgroup%/}/$leftover"
    [ -d "$hierarchy" ] && [ ! -e "$payload" ] && payloads+=("$payload")
  done
done
cleanup() {
  for payload in "${payloads[@]}"; do
    [ -d "$payload" ] && find "$payload" -depth -type d -exec rmdir {} + 2> /dev/null
  done
  rm -rf "$pin_path" "$work"
}
trap cleanup EXIT

echo "== debootstrap bookworm with systemd"
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,curl,libbpf1,libelf1,zlib1g,libspdlog1.10,libfmt9,libsystemd0,libcpp-httplib0.11,libyaml-cpp0.7,libssl3 \
  bookworm "$root" "$mirror" > "$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log"; exit 1; }

echo "== cmake --install --prefix /usr into it"
DESTDIR="$root" cmake --install "$build_dir" --prefix /usr --strip > /dev/null
echo sockmapd-check > "$root/etc/hostname"
mkdir -p "$root/out" "$work/out" "$root/etc/systemd/system/multi-user.target.wants"

# The scope: a child cgroup of the container's own cgroup v2 tree (never its root), written into the
# settings file the unit reads, as an operator would.
cat > "$root/usr/local/sbin/sockmapd-check-scope" << 'EOF'
#!/bin/sh
cgroup=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)/sockmapd-check
mkdir -p "$cgroup"
printf 'SOCKMAPD_CGROUP=%s\nSOCKMAPD_ARGS=--pin-path PIN_PATH\n' "$cgroup" > /etc/sockmapd/sockmapd.env
EOF
sed -i "s|PIN_PATH|$pin_path|" "$root/usr/local/sbin/sockmapd-check-scope"
chmod +x "$root/usr/local/sbin/sockmapd-check-scope"
cat > "$root/etc/systemd/system/sockmapd-check-scope.service" << 'EOF'
[Unit]
Description=check: a child cgroup and the settings for sockmapd
Before=sockmapd.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/sockmapd-check-scope
[Install]
WantedBy=multi-user.target
EOF
cat > "$root/usr/local/sbin/sockmapd-check-probe" << 'EOF'
#!/bin/sh
# Drives sockmapd.service and writes what happened to /out/result; powers the container off.
exec > /out/result 2>&1
show() { systemctl show sockmapd -p ActiveState -p SubState -p Result -p StatusText | sort | tr '\n' ' '; echo; }
echo "settings: $(cat /etc/sockmapd/sockmapd.env)"
echo "started: $(show)"
echo "readyz: $(curl -s -m 3 http://127.0.0.1:9476/readyz)"
pid=$(systemctl show -p MainPID --value sockmapd)
echo "capabilities: $(grep -E '^CapEff' /proc/$pid/status)"
systemctl reload sockmapd && echo "reload: ok" || echo "reload: failed"
sleep 1
echo "after reload: $(show)"
systemctl stop sockmapd
echo "stopped: $(show)"
journalctl -u sockmapd --no-pager -o cat
EOF
chmod +x "$root/usr/local/sbin/sockmapd-check-probe"
cat > "$root/etc/systemd/system/sockmapd-check-probe.service" << 'EOF'
[Unit]
Description=check: drive sockmapd.service, then power off
After=sockmapd.service multi-user.target
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/sockmapd-check-probe
ExecStartPost=/bin/systemctl poweroff --no-block
[Install]
WantedBy=multi-user.target
EOF
for unit in sockmapd.service sockmapd-check-scope.service sockmapd-check-probe.service; do
  dir=/etc/systemd/system
  [ "$unit" = sockmapd.service ] && dir=/usr/lib/systemd/system
  ln -sf "$dir/$unit" "$root/etc/systemd/system/multi-user.target.wants/$unit"
done

echo "== boot (systemd-nspawn: bpf() allowed, the unit's three capabilities, host bpffs bound in)"
timeout 180 systemd-nspawn -q -D "$root" --register=no --keep-unit --private-network \
  --capability=CAP_BPF,CAP_PERFMON,CAP_NET_ADMIN --system-call-filter=bpf \
  --bind=/sys/fs/bpf --bind="$work/out:/out" -b > "$work/boot.log" 2>&1 || true
[ -f "$work/out/result" ] || { echo "no result; boot log:"; tail -30 "$work/boot.log"; exit 1; }
cat "$work/out/result"

fail=0
expect() { grep -q -- "$1" "$work/out/result" || { echo "check-systemd-nspawn: expected: $1" >&2; fail=1; }; }
expect "started: ActiveState=active Result=success StatusText=accelerating local TCP pairs"
expect "readyz: ok"
expect "capabilities: CapEff:	000000c000001000"   # CAP_NET_ADMIN, CAP_PERFMON, CAP_BPF and nothing else
expect "reload: ok"
expect "after reload: ActiveState=active"
expect "SIGHUP: nothing to reload yet"
expect "stopped: ActiveState=inactive Result=success"
[ -d "$pin_path" ] || { echo "check-systemd-nspawn: the maps were not left pinned at $pin_path" >&2; fail=1; }
[ $fail = 0 ] && echo "check-systemd-nspawn: sockmapd.service runs under systemd as intended"
exit $fail
