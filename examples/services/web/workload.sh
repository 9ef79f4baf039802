# Serve the page on loopback and fetch it twice.
httpd -p 127.0.0.1:8081 -h /app/www
sleep 1
wget -q -O - http://127.0.0.1:8081/index.html > /srv/page
wget -q -O - http://127.0.0.1:8081/index.html
