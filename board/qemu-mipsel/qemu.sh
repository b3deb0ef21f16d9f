# Boot parameters for board/tools/qemu-boot.sh (sourced by sh).
DEB_ARCH=mipsel
KERNEL_META=linux-image-4kc-malta
QEMU_CMD="qemu-system-mipsel -M malta -cpu 24Kf -m 256 -vga none"
NET_DEVICE=virtio-net-pci
CONSOLE=ttyS0
MODULES="virtio_pci virtio_net"
BOOT_TIMEOUT=300
