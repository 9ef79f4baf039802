mkdir -p /srv/spool
watcher /srv/spool
