/**
 * The Debian packages the OpenSSI userland runs (overlays/openssi): the DHCP/TFTP server, the
 * remote shell, the NFS server of /cluster, the firewall, pxelinux for PXE nodes, busybox for
 * httpd, wget for the heartbeat, radvd for netbooting iPXE nodes (without a router advertisement
 * they wait 13 s for IPv6 before they boot). Each entry: the package to install, then others that
 * do as well.
 */
export const userlandPackages: string[][] = [
  ['busybox-static', 'busybox'], ['dnsmasq'], ['dropbear-bin'], ['iproute2'], ['kmod'], ['procps'],
  ['pxelinux'], ['syslinux-common'], ['nfs-kernel-server'], ['wget'], ['nftables'], ['radvd'],
];
