# A database on the service's scratch filesystem, written in a transaction and read back.
sqlite3 /srv/orders.db 'BEGIN; CREATE TABLE orders(id INTEGER PRIMARY KEY, amount INTEGER);
  INSERT INTO orders(amount) VALUES (10), (20), (30); COMMIT;'
sqlite3 /srv/orders.db "SELECT 'orders: ' || count(*) || ' total: ' || sum(amount) FROM orders;"
