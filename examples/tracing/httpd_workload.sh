# busybox httpd serves /app/www on loopback; the workload fetches the page through it.
httpd -p 127.0.0.1:8080 -h /app/www
sleep 1
wget -q -O - http://127.0.0.1:8080/index.html
