# nginx serving a static page, loaded by ApacheBench (ab): 2000 requests, 8 at a time.
set -e
echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd
echo 'root:x:0:' > /etc/group
mkdir -p /tmp/nginx
nginx -c /app/nginx.conf -p /tmp/nginx -e /tmp/nginx/error.log
i=0
until wget -q -O /dev/null http://127.0.0.1:8080/; do
  i=$((i + 1)); [ $i -lt 100 ] || { cat /tmp/nginx/error.log; exit 1; }; sleep 0.1
done
echo KR_APP_READY > /dev/console
ab -q -n 2000 -c 8 http://127.0.0.1:8080/index.html
nginx -c /app/nginx.conf -p /tmp/nginx -e /tmp/nginx/error.log -s stop
