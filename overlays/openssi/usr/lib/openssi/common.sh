# Sourced by the OpenSSI commands: the cluster's settings and the helpers they share.
# shellcheck shell=sh

# shellcheck source=/dev/null
. /etc/openssi/cluster.conf
CLUSTERTAB=/cluster/etc/clustertab
# shellcheck disable=SC2034 # for the commands that source this file
DHCP_HOSTS=/cluster/etc/dhcp-hosts
# shellcheck disable=SC2034
NETBOOT_DIR=/cluster/etc/netboot
STATE_DIR=/run/openssi/state
# on or off: NTP across the cluster (ssi-ntp); until set, the site's choice (NTP in cluster.conf).
NTP_STATE=/cluster/etc/ntp
# The NFS export for hosts outside the cluster (ssi-nfs-server; README.nfs-server): one line,
# "CLIENTS FOLDER", or "off"; until set, the site's choice (NFS_SERVER_* in cluster.conf).
NFS_SERVER_STATE=/cluster/etc/nfs-server
# An IPv4 address, each part 0-255 (grep -E).
IPV4_RE='(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}'
# The CVIP settings this node applied (cvip-config's lines; README.CVIP), and the ports anyone may
# reach a CVIP on here (the CVIP service's).
# shellcheck disable=SC2034
CVIP_APPLIED=/run/openssi/cvip.applied
# shellcheck disable=SC2034
CVIP_OPEN=/run/openssi/cvip.open
# The cluster's own TCP services, never balanced or reachable through a CVIP: dropbear, node 1's
# HTTP and NFS, rpcbind, DNS, mountd.
# shellcheck disable=SC2034
CVIP_PRIVATE_PORTS="22 53 80 111 2049 20048"

# applet TOOL ARG...: busybox's TOOL where this busybox has it (the default CD's does; a remastered
# base may have none, or a smaller one), else the system's. Under TCG a dynamically linked tool
# takes about 35 ms to start and a static busybox applet 7 ms (measured): the daemons' beats,
# every second on every node, and the boot's helpers use these.
APPLETS=" "
if command -v busybox > /dev/null 2>&1; then
	APPLETS=" $(busybox --list 2> /dev/null | while read -r ap_name; do printf '%s ' "$ap_name"; done)"
fi
applet() {
	case "$APPLETS" in
		*" $1 "*) busybox "$@" ;;
		*) "$@" ;;
	esac
}

die() {
	echo "${0##*/}: $*" >&2
	exit 1
}

# Logs a line to /var/log/openssi.log, and to the console unless it is the line told last: a
# daemon that fails the same step every second says so once (commands typed there stay readable).
log() {
	echo "${0##*/}: $*" >> /var/log/openssi.log 2>/dev/null || true
	lg_line="openssi: ${0##*/}: $*"
	[ "$lg_line" != "$(cat /run/openssi/last-told 2>/dev/null)" ] || return 0
	echo "$lg_line" > /run/openssi/last-told 2>/dev/null || true
	echo "$lg_line" > /dev/console 2>/dev/null || true
}

# write_file FILE: stdin to FILE through a temporary name in the same folder, renamed over it,
# so a reader (on this node or over NFS) sees the old file or the new one, never a part.
# mktemp, not $$: identically booted nodes have identical PIDs.
write_file() {
	wf_tmp=$(applet mktemp "$1.XXXXXX") || return 1
	if applet cat > "$wf_tmp" && applet chmod 644 "$wf_tmp" && applet mv -f "$wf_tmp" "$1"; then return 0; fi
	applet rm -f "$wf_tmp"
	return 1
}

# take_lock NAME: waits for and takes the cluster-wide lock NAME, released by release_lock NAME
# (callers set a trap so that an error releases it too). mkdir is atomic on the init node's tmpfs
# and over NFSv4 alike (flock and POSIX locks do not see each other on the server's side). A lock
# older than 60 s is a crashed holder's and is taken over.
take_lock() {
	tl_dir="/cluster/etc/.lock-$1"
	tl_waited=0
	until mkdir "$tl_dir" 2>/dev/null; do
		if [ -d "$tl_dir" ] && [ $(($(date +%s) - $(stat -c %Y "$tl_dir" 2>/dev/null || date +%s))) -gt 60 ]; then
			log "taking over the stale lock $tl_dir"
			rmdir "$tl_dir" 2>/dev/null || true
			continue
		fi
		tl_waited=$((tl_waited + 1))
		[ "$tl_waited" -lt 300 ] || die "$tl_dir held for too long"
		applet sleep 0.2
	done
}

release_lock() {
	rmdir "/cluster/etc/.lock-$1" 2>/dev/null || true
}

# Whether a value is one line of printable characters (no newline, tab or other control byte):
# every value a command writes into a config file is checked with this first.
is_printable() {
	case "$1" in
		*[![:print:]]*) return 1 ;;
		*) return 0 ;;
	esac
}

# This node's number: written at boot from the kernel command line (openssi.node=N, default 1).
# The live system's boot medium holding file $1: where minirt, KNOPPIX and live-boot (old and
# new) mount it.
boot_medium() {
	for medium in /cdrom /mnt-system /run/live/medium /lib/live/mount/medium; do
		if [ -r "$medium/$1" ]; then
			echo "$medium"
			return 0
		fi
	done
	return 1
}

# wait_for_boot: waits (up to 2 minutes) until this node's start has ended: the services of
# /etc/openssi/later.d (node 1's dnsmasq and nfsd) start beside the shell, and what restarts or
# reconfigures one of them must not race its start.
wait_for_boot() {
	wfb_tenths=0
	while [ ! -e /run/boot-done ] && [ "$wfb_tenths" -lt 1200 ]; do
		applet sleep 0.1
		wfb_tenths=$((wfb_tenths + 1))
	done
}

this_node() {
	read_file /run/openssi/nodenum tn_node || tn_node=1
	echo "$tn_node"
}

# Prints the clustertab lines without comments: node ip mac boot initnode bootdev
clustertab_rows() {
	[ -r "$CLUSTERTAB" ] || return 0
	applet grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$CLUSTERTAB" || true
}

# Field N (1-based) of node's clustertab row; empty when the node is not in the table.
clustertab_field() {
	# shellcheck disable=SC2016 # awk's program
	clustertab_rows | applet awk -F '\t' -v n="$1" -v f="$2" '$1 == n { print $f; exit }'
}

# A node's name: its own /etc/nodename, a CDSL, is /cluster/node<N>/etc/nodename.
node_name() {
	read_node_name "$1"
	echo "$NODE_NAME"
}

node_ip() {
	ip=$(clustertab_field "$1" 2)
	if [ -z "$ip" ] && [ "$1" = 1 ]; then ip=$INIT_NODE_IP; fi
	echo "$ip"
}

# record_state NODE STATE: what the membership service records, written atomically.
record_state() {
	printf '%s\n' "$2" | write_file "$STATE_DIR/$1"
}

# NEVERUP until a node has been seen; then what the membership service last recorded.
node_state() {
	read_node_state "$1"
	echo "$NODE_STATE"
}

# The membership and load daemons run every second or so on every node, and node 1 answers every
# node's heartbeat: what they read, they read with the shell's own `read` and `test`. A process
# costs tens of milliseconds of an emulated CPU (about 40 ms under TCG, measured): 14 a second
# kept node 1 of an idle two-node cluster 64% busy, and heartbeats late.

# read_file FILE VAR: FILE's first line into VAR, by the shell alone; false if FILE is missing
# or empty.
read_file() {
	[ -r "$1" ] && { read -r "$2" < "$1"; } 2> /dev/null
}

# read_uptime: UPTIME := this node's seconds since boot. A clock that never steps (set-clock and
# ssi-timesync step the date), read by the shell alone.
read_uptime() {
	read -r UPTIME _ < /proc/uptime
	UPTIME=${UPTIME%.*}
}

# read_node_state N: NODE_STATE := node N's state as this node knows it (NEVERUP if none).
read_node_state() {
	read_file "$STATE_DIR/$1" NODE_STATE || NODE_STATE=NEVERUP
}

# read_node_name N: NODE_NAME := node N's name (its /etc/nodename CDSL; node 1's from the
# cluster's settings until it has one), or empty.
read_node_name() {
	read_file "/cluster/node$1/etc/nodename" NODE_NAME || NODE_NAME=""
	[ -n "$NODE_NAME" ] || [ "$1" != 1 ] || NODE_NAME=$INIT_NODE_NAME
}

# clustertab_row N: CT_IP and CT_MAC of node N from clustertab, by the shell alone; false if N
# has no row.
clustertab_row() {
	[ -r "$CLUSTERTAB" ] || return 1
	# shellcheck disable=SC2034 # CT_IP and CT_MAC are the callers'
	while IFS='	' read -r ct_node CT_IP CT_MAC _; do
		[ "$ct_node" != "$1" ] || return 0
	done < "$CLUSTERTAB"
	return 1
}

# clustertab_changed: whether clustertab is newer than what follow-clustertab last applied (the
# test is the shell's own: no process).
clustertab_changed() {
	# shellcheck disable=SC3013 # -nt: dash and busybox ash both have it, and it takes no process
	[ ! -e /run/openssi/clustertab.applied ] || [ "$CLUSTERTAB" -nt /run/openssi/clustertab.applied ]
}

# follow_clustertab_if_changed: what the daemons call every beat; no process when nothing changed.
follow_clustertab_if_changed() {
	if clustertab_changed; then /usr/lib/openssi/follow-clustertab; fi
}

# Every node number the cluster knows (clustertab and node 1), ascending.
known_nodes() {
	{ echo 1; clustertab_rows | applet cut -f 1; } | applet sort -n -u
}

up_nodes() {
	for n in $(known_nodes); do
		[ "$(node_state "$n")" = UP ] && echo "$n"
	done
	return 0
}

# read_nfs_export: NFS_EXPORT := "CLIENTS FOLDER" of the export for hosts outside the cluster, or
# nothing; read by the shell alone (the CVIP service looks every 2 s).
read_nfs_export() {
	read_file "$NFS_SERVER_STATE" NFS_EXPORT || NFS_EXPORT="${NFS_SERVER_CLIENTS:-} ${NFS_SERVER_EXPORT:-}"
	case "$NFS_EXPORT" in
		off | ' '* | *' ') NFS_EXPORT="" ;;
	esac
}

# valid_nfs_export CLIENTS FOLDER: whether they are an export ssi-nfs-server may set up: an IPv4
# address or network (A.B.C.D/N) and a folder inside /cluster (no . or .. part). Else says why.
valid_nfs_export() {
	echo "$1" | grep -Eqx "$IPV4_RE(/([0-9]|[12][0-9]|3[0-2]))?" ||
		{ echo "clients '$1' is not an IPv4 address or network (A.B.C.D/N)" >&2; return 1; }
	case "$2" in
		/cluster/?*) ;;
		*) echo "folder '$2' is not inside /cluster" >&2; return 1 ;;
	esac
	case "$2/" in
		*/./* | */../* | *//*) echo "folder '$2' has an empty, . or .. part" >&2; return 1 ;;
		*[!A-Za-z0-9._/+-]*) echo "folder '$2' has a character other than letters, digits and ._+-" >&2; return 1 ;;
	esac
}

# ntp_state: on or off, NTP across the cluster (README.ntp).
ntp_state() {
	read_file "$NTP_STATE" ns_state || ns_state=${NTP:-off}
	echo "$ns_state"
}

is_number() {
	case "$1" in
		'' | *[!0-9]*) return 1 ;;
		*) return 0 ;;
	esac
}

# Movable jobs (see README-mosixll): each runs as the init of its own PID namespace, so CRIU
# restores it whole on another node with no PID clash. JOBS/<id>/ holds its output, exit status
# and checkpoints; JOBS/pid/<name> says where it runs now: "node pid id", its name being the PID
# it started with, cluster-wide.
JOBS=/cluster/var/lib/openssi/jobs
# Each node's load as its loadleveld publishes it (LOADS/node<N>), and the moves under way to a
# node: LOADS/incoming/<N>.<name>, "moving T" while migrate runs, then "arrived T" (seconds since
# the epoch). A node's published load is smoothed: it shows a job in full only seconds after it
# came, so every node counts a move to it in its load meanwhile (MOSIX added a sent process to its
# estimate of the target at once).
# shellcheck disable=SC2034 # for migrate and loadleveld
LOADS=/cluster/var/lib/openssi/loads

# Below this much resident memory a job moves without a pre-copy (job-checkpoint --pre): its
# whole checkpoint is quick, and a pre-copy would add a criu run and a copy on a busy node.
# shellcheck disable=SC2034 # for job-checkpoint
PRECOPY_MIN_KIB=8192

# job_where NAME: "node pid id" of the movable job NAME, or nothing.
job_where() {
	applet cat "$JOBS/pid/$1" 2>/dev/null || true
}

# Whether CRIU can move processes on this node (a remastered base may lack it).
can_migrate() {
	command -v criu > /dev/null 2>&1
}

# criu_why LOG ERRORS: why criu failed, in a line: its log's first error, or the last thing it said
# on stderr (ERRORS) before it had a log (a bad option, say).
criu_why() {
	cw_line=$(grep -m 1 'Error' "$1" 2>/dev/null | sed 's/^.*): //') || true
	[ -n "$cw_line" ] || cw_line=$(tail -n 1 "$2" 2>/dev/null) || true
	echo "${cw_line:-criu said nothing}"
}
