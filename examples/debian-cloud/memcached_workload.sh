# memcached (4 threads, 64 MB) loaded by memcslap (libmemcached's load generator): sets, then gets.
set -e
echo "root:x:0:0:root:/root:/bin/sh" > /etc/passwd
echo "root:x:0:" > /etc/group
memcached -u root -d -p 11211 -l 127.0.0.1 -m 64 -t 4 -P /tmp/memcached.pid
i=0
until memcstat --servers=127.0.0.1:11211 >/dev/null 2>&1; do
  i=$((i + 1)); [ $i -lt 100 ] || exit 1; sleep 0.1
done
echo KR_APP_READY > /dev/console
memcslap --servers=127.0.0.1:11211 --concurrency=4 --execute-number=2000 --test=set
memcslap --servers=127.0.0.1:11211 --concurrency=4 --execute-number=2000 --test=get
memcstat --servers=127.0.0.1:11211 | grep -E 'get_hits|curr_items' | sed 's/^/memcached: /'
kill "$(cat /tmp/memcached.pid)"
