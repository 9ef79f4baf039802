# The deployment's own boot step, traced with the boot: bring up the loopback interface.
ip link set lo up
ip addr show lo
echo "boot step: loopback up"
