# Boot parameters for board/tools/qemu-boot.sh (sourced by sh).
DEB_ARCH=arm64                       # Debian architecture of kernel and busybox
KERNEL_META=linux-image-arm64        # metapackage naming the current kernel
QEMU_CMD="qemu-system-aarch64 -M virt -cpu cortex-a57 -m 256"
NET_DEVICE=virtio-net-pci
CONSOLE=ttyAMA0
MODULES="virtio_pci virtio_net"      # virtio drivers are modules in Debian's kernel
BOOT_TIMEOUT=240                     # seconds; TCG emulation, no KVM
