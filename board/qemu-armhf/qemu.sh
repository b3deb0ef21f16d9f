# Boot parameters for board/tools/qemu-boot.sh (sourced by sh).
DEB_ARCH=armhf
KERNEL_META=linux-image-armmp
# highmem=off: the non-LPAE armmp kernel cannot reach PCI above 4 GiB.
QEMU_CMD="qemu-system-arm -M virt,highmem=off -cpu cortex-a15 -m 256"
NET_DEVICE=virtio-net-pci
CONSOLE=ttyAMA0
MODULES="virtio_pci virtio_net"
BOOT_TIMEOUT=300
