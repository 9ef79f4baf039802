kv /srv/kv.sock
