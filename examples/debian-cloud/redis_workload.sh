# redis-server (no persistence) loaded by redis-benchmark: SET/GET/INCR/LPUSH/LRANGE.
set -e
redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --logfile /tmp/redis.log --dir /tmp
i=0
until redis-cli -p 6379 ping 2>/dev/null | grep -q PONG; do
  i=$((i + 1)); [ $i -lt 100 ] || { cat /tmp/redis.log; exit 1; }; sleep 0.1
done
echo KR_APP_READY > /dev/console
redis-benchmark -p 6379 -q -n 2000 -c 10 -t set,get,incr,lpush,lrange_100
redis-cli -p 6379 dbsize
redis-cli -p 6379 shutdown nosave || true
