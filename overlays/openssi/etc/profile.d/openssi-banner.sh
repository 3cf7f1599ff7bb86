# Shown once per login shell: which node this is, on which address, in which cluster. Read with
# the shell's own `read`: the console's first prompt waits for this.
if [ -r /run/openssi/nodenum ] && [ -r /etc/openssi/cluster.conf ]; then
	# shellcheck source=/dev/null
	. /etc/openssi/cluster.conf
	read -r openssi_node < /run/openssi/nodenum || true
	read -r openssi_name < /etc/nodename || true
	read -r openssi_ip < /run/openssi/ip || true
	read -r openssi_nic < /run/openssi/interconnect || true
	echo "KNOPPIX/OpenSSI: node $openssi_node ($openssi_name), $openssi_ip/$INTERCONNECT_PREFIX on $openssi_nic, cluster $CLUSTERNAME"
	unset openssi_node openssi_name openssi_ip openssi_nic
fi
