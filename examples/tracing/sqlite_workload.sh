# A Debian-packaged, dynamically linked program with its libraries.
sqlite3 /tmp/demo.db 'CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (40), (2);'
sqlite3 /tmp/demo.db 'SELECT sum(x) FROM t;'
