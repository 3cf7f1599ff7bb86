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

die() {
	echo "${0##*/}: $*" >&2
	exit 1
}

# This node's number: written at boot from the kernel command line (openssi.node=N, default 1).
this_node() {
	cat /run/openssi/nodenum 2>/dev/null || echo 1
}

# Prints the clustertab lines without comments: node ip mac boot initnode bootdev
clustertab_rows() {
	[ -r "$CLUSTERTAB" ] || return 0
	grep -v '^[[:space:]]*#' "$CLUSTERTAB" | grep -v '^[[:space:]]*$' || true
}

# Field N (1-based) of node's clustertab row; empty when the node is not in the table.
clustertab_field() {
	clustertab_rows | awk -F '\t' -v n="$1" -v f="$2" '$1 == n { print $f; exit }'
}

# A node's name: its own /etc/nodename, a CDSL, is /cluster/node<N>/etc/nodename.
node_name() {
	if [ -r "/cluster/node$1/etc/nodename" ]; then
		cat "/cluster/node$1/etc/nodename"
	elif [ "$1" = 1 ]; then
		echo "$INIT_NODE_NAME"
	fi
}

node_ip() {
	ip=$(clustertab_field "$1" 2)
	if [ -z "$ip" ] && [ "$1" = 1 ]; then ip=$INIT_NODE_IP; fi
	echo "$ip"
}

# NEVERUP until a node has been seen; then what the membership service last recorded.
node_state() {
	if [ -r "$STATE_DIR/$1" ]; then
		cat "$STATE_DIR/$1"
	else
		echo NEVERUP
	fi
}

# Every node number the cluster knows (clustertab and node 1), ascending.
known_nodes() {
	{ echo 1; clustertab_rows | cut -f 1; } | sort -n -u
}

up_nodes() {
	for n in $(known_nodes); do
		[ "$(node_state "$n")" = UP ] && echo "$n"
	done
	return 0
}

is_number() {
	case "$1" in
		'' | *[!0-9]*) return 1 ;;
		*) return 0 ;;
	esac
}
