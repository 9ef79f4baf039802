# The deployment's own boot steps, traced with the boot: loopback and a scratch /srv.
ip link set lo up
mkdir -p /srv
mount -t tmpfs -o size=16m srv /srv
echo "services baseline: ready"
