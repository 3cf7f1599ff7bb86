# Shown once per login shell: which node this is, on which address, in which cluster.
if [ -r /run/openssi/nodenum ] && [ -r /etc/openssi/cluster.conf ]; then
	# shellcheck source=/dev/null
	. /etc/openssi/cluster.conf
	echo "KNOPPIX/OpenSSI: node $(cat /run/openssi/nodenum) ($(cat /etc/nodename)), $(cat /run/openssi/ip)/$INTERCONNECT_PREFIX on $(cat /run/openssi/interconnect), cluster $CLUSTERNAME"
fi
